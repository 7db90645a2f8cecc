package wazeroshim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/wasmkube/wasmkube/internal/wazerofs"
	"github.com/wasmkube/wasmkube/internal/wazeromodule"
	"github.com/wasmkube/wasmkube/internal/wazerorun"
)

// Annotations containerd's CRI plugin puts on a pod's containers.
const (
	annotationContainerType = "io.kubernetes.cri.container-type"
	containerTypeSandbox    = "sandbox"
)

// imageSource reads the module of a container from its image (containerd's content store).
type imageSource func(ctx context.Context, containerID string) (*wazeromodule.Source, error)

// task is one container of a shim process: a Wasm module, or a pod's sandbox, which holds no
// process and only waits to be killed (like the pause process it replaces).
type task struct {
	id, bundle string
	pid        uint32
	sandbox    bool
	stdinPath  string
	stdoutPath string
	stderrPath string
	mounted    bool
	cg         *cgroup
	io         *stdio
	module     *wazerorun.Module
	gc         *gcPause      // held while the module compiles and gcResumeDelay after
	loaded     chan struct{} // closed once module is compiled or failed to (loadErr); nil for a sandbox
	loadErr    error
	proc       wazerorun.Process
	stopIO     context.CancelFunc // ends a pending open of stdin

	mu         sync.Mutex
	status     tasktypes.Status
	exitStatus uint32
	exitedAt   time.Time
	cancel     context.CancelCauseFunc // stops a running task
	done       chan struct{}           // closed once the task has exited
}

// newTask prepares everything a container needs before Start: cgroup (when join is set: the first
// container of a shim process), rootfs, the module and its stdio. The module's compilation goes on
// after Create returns, so containerd's Create-to-Start round trip overlaps it; Start waits for it
// and reports its errors. Errors leave nothing behind.
func newTask(ctx context.Context, req *taskapi.CreateTaskRequest, fromImage imageSource, gc *gcPause, join *cgroupHost) (_ *task, err error) {
	if req.Terminal {
		return nil, fmt.Errorf("container %s: a terminal (tty) is not supported by the wazero shim: %w", req.ID, errdefs.ErrNotImplemented)
	}
	if req.Checkpoint != "" {
		return nil, fmt.Errorf("container %s: restoring a checkpoint: %w", req.ID, errdefs.ErrNotImplemented)
	}
	spec, err := readSpec(req.Bundle)
	if err != nil {
		return nil, err
	}
	opts, err := parseOptions(req.Options)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.ID, err)
	}
	t := &task{
		id: req.ID, bundle: req.Bundle, pid: uint32(os.Getpid()),
		sandbox:   spec.Annotations[annotationContainerType] == containerTypeSandbox,
		stdinPath: req.Stdin, stdoutPath: req.Stdout, stderrPath: req.Stderr,
		status: tasktypes.Status_CREATED,
		done:   make(chan struct{}),
		gc:     gc,
	}
	defer func() {
		if err != nil {
			if cerr := t.cleanup(ctx); cerr != nil {
				log.G(ctx).WithError(cerr).Warn("clean up after a failed create")
			}
		}
	}()
	// The cgroup comes first: memory is charged to the cgroup of the process that first touches it,
	// so the module's bytes, its compiled code and the guest's memory must all come after the move.
	if join != nil && spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		if t.cg, err = join.joinCgroup(spec.Linux.CgroupsPath, spec.Linux.Resources); err != nil {
			return nil, fmt.Errorf("container %s: %w", req.ID, err)
		}
	}
	var rootfs string
	if rootfs, t.mounted, err = mountRootfs(req.Bundle, spec, req.Rootfs); err != nil {
		return nil, err
	}
	if !t.sandbox {
		if err := t.load(ctx, spec, rootfs, opts, fromImage); err != nil {
			return nil, fmt.Errorf("container %s: %w", req.ID, err)
		}
	}
	ioCtx, stopIO := context.WithCancel(context.WithoutCancel(ctx))
	t.stopIO = stopIO
	if t.io, err = openStdio(ioCtx, req.Stdin, req.Stdout, req.Stderr); err != nil {
		return nil, fmt.Errorf("container %s: %w", req.ID, err)
	}
	t.proc.Stdin, t.proc.Stdout, t.proc.Stderr = t.io.stdin, t.io.stdout, t.io.stderr
	return t, nil
}

// load reads the container's module, prepares its process and starts compiling it; Start
// waits for the compilation (see loaded). A wazero runtime is prepared while the module is read.
// On error nothing is left running; on success cleanup closes t.module.
func (t *task) load(ctx context.Context, spec *specs.Spec, rootfs string, opts Options, fromImage imageSource) error {
	if spec.Process == nil {
		return errors.New("config.json has no process")
	}
	var limit int64
	if r := spec.Linux; r != nil && r.Resources != nil && r.Resources.Memory != nil && r.Resources.Memory.Limit != nil {
		limit = *r.Resources.Memory.Limit
	}
	// The compilation outlives Create's request, so it must not end with it.
	bg := context.WithoutCancel(ctx)
	type prepared struct {
		m   *wazerorun.Module
		err error
	}
	prep := make(chan prepared, 1)
	go func() {
		m, err := wazerorun.Prepare(bg, wazerorun.Options{CacheDir: opts.CacheDir, MemoryLimit: limit})
		prep <- prepared{m, err}
	}()
	args, entry, src, err := t.source(ctx, spec.Process.Args, rootfs, fromImage)
	p := <-prep
	if err == nil && p.err != nil {
		err = fmt.Errorf("module from %s: %w", src.Origin, p.err)
	}
	if err != nil {
		if p.m != nil {
			_ = p.m.Close(bg)
		}
		return err
	}
	t.module = p.m
	t.proc.Args, t.proc.Env, t.proc.Entry = args, spec.Process.Env, entry
	t.proc.Mounts = guestMounts(rootfs, spec)
	// The guest's file operations run as the container's user (runAsUser, runAsGroup, and the
	// supplementary groups, fsGroup among them), as a runc container's process would.
	u := spec.Process.User
	t.proc.Creds, t.proc.Umask = wazerofs.NewCreds(u.UID, u.GID, u.AdditionalGids), u.Umask
	t.loaded = make(chan struct{})
	go func() {
		defer close(t.loaded)
		t.loadErr = t.compile(bg, src, entry)
	}()
	return nil
}

// source finds the container's module (args[0] in the rootfs, else the image's Wasm layer) and
// returns the guest's argv and entry function with it.
func (t *task) source(ctx context.Context, args []string, rootfs string, fromImage imageSource) (_ []string, entry string, _ *wazeromodule.Source, _ error) {
	var modulePath string
	if len(args) > 0 {
		modulePath, entry = wazeromodule.ParseEntry(args[0])
		args = append([]string{modulePath}, args[1:]...)
	}
	var src *wazeromodule.Source
	var err error
	if modulePath != "" {
		src, err = wazeromodule.FromRootfs(rootfs, modulePath)
	}
	if modulePath == "" || errors.Is(err, os.ErrNotExist) {
		rootfsErr := err
		if src, err = fromImage(ctx, t.id); err != nil {
			if rootfsErr != nil {
				return nil, "", nil, fmt.Errorf("%w: args[0] %q is not in the rootfs (%v), and the image has no Wasm layer (%v)",
					wazeromodule.ErrNoModule, args[0], rootfsErr, err)
			}
			return nil, "", nil, fmt.Errorf("the process has no args[0] naming a module, and the image has no Wasm layer: %w", err)
		}
		if len(args) == 0 {
			args = []string{t.id + ".wasm"}
		}
	} else if err != nil {
		return nil, "", nil, err
	}
	return args, entry, src, nil
}

// compile compiles the module (or loads it from the cache) and checks its entry function.
func (t *task) compile(ctx context.Context, src *wazeromodule.Source, entry string) error {
	// Hash the module (for the log) on the other core while wazero compiles it.
	go src.Digest()
	// The compile's garbage is collected once the guest has had time to start, not while it starts.
	release := t.gc.hold()
	defer time.AfterFunc(gcResumeDelay, release)
	if err := t.module.Compile(ctx, src.Wasm); err != nil {
		return fmt.Errorf("module from %s (%s): %w", src.Origin, src.Digest(), err)
	}
	if err := t.module.CheckEntry(entry); err != nil {
		return fmt.Errorf("module from %s: %w", src.Origin, err)
	}
	log.G(ctx).WithFields(log.Fields{
		"module": src.Origin, "digest": src.Digest(), "cache_hit": t.module.CacheHit, "compile": t.module.CompileTime,
	}).Info("module compiled")
	return nil
}

func readSpec(bundle string) (*specs.Spec, error) {
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse the OCI spec %s: %w", p, err)
	}
	return &s, nil
}

// start waits for the module's compilation (begun at Create), marks the task running and
// launches it. The guest runs at once, but its exit is held back until the caller, having
// published the start event, calls release: the start event always precedes the exit event, and
// publishing it does not delay the guest. onExit runs once the task has exited; oom is true when
// the guest was killed for exceeding its memory limit. A module that failed to compile fails Start
// with the reason.
func (t *task) start(ctx context.Context, onExit func(status uint32, at time.Time, oom bool)) (release func(), err error) {
	if t.loaded != nil {
		select {
		case <-t.loaded:
		case <-ctx.Done():
			return nil, fmt.Errorf("container %s: waiting for its module to compile: %w", t.id, ctx.Err())
		}
		if t.loadErr != nil {
			return nil, fmt.Errorf("container %s: %w", t.id, t.loadErr)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status != tasktypes.Status_CREATED {
		return nil, fmt.Errorf("container %s is %s, not created: %w", t.id, t.status, errdefs.ErrFailedPrecondition)
	}
	runCtx, cancel := context.WithCancelCause(context.Background())
	t.status, t.cancel = tasktypes.Status_RUNNING, cancel
	started := make(chan struct{})
	go t.run(runCtx, started, onExit)
	return func() { close(started) }, nil
}

// run runs the guest (or, for a sandbox, waits for a kill) and records its exit once started is closed.
func (t *task) run(ctx context.Context, started <-chan struct{}, onExit func(uint32, time.Time, bool)) {
	var code int
	var oom bool
	if t.sandbox {
		<-ctx.Done()
		code = sandboxExitCode(signalOf(ctx))
	} else {
		res, err := t.module.Run(ctx, t.proc)
		code, oom = res.ExitCode, res.MemoryLimitExceeded
		if err != nil {
			fmt.Fprintf(stderrOf(t.proc), "wazero: %v\n", err)
			code = wazerorun.ExitTrap
		}
	}
	<-started
	t.mu.Lock()
	if err := t.io.CloseOutput(); err != nil {
		log.L.WithError(err).Warn("close the container's output")
	}
	at := t.exitedLocked(uint32(code))
	t.mu.Unlock()
	onExit(uint32(code), at, oom)
}

// exitedLocked records the exit; t.mu is held.
func (t *task) exitedLocked(code uint32) time.Time {
	t.status, t.exitStatus, t.exitedAt = tasktypes.Status_STOPPED, code, time.Now()
	close(t.done)
	return t.exitedAt
}

// signal actions for a running Wasm guest. WASI has no signals: a signal either ends the guest
// (exit code 128+signal) or is ignored as a process with default handlers would ignore it.
func signalEnds(sig syscall.Signal) (ends bool, err error) {
	switch sig {
	case 0, syscall.SIGCHLD, syscall.SIGWINCH, syscall.SIGURG, syscall.SIGCONT:
		return false, nil
	case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return false, fmt.Errorf("signal %s: pausing a Wasm guest: %w", sig, errdefs.ErrNotImplemented)
	}
	return true, nil
}

// kill delivers sig. A task that was created but never started exits at once, with 128+sig.
// It returns the exit code when the kill ended a task that was not started (the caller publishes it).
func (t *task) kill(sig syscall.Signal) (exited bool, code uint32, at time.Time, err error) {
	ends, err := signalEnds(sig)
	if err != nil {
		return false, 0, time.Time{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.status {
	case tasktypes.Status_STOPPED:
		return false, 0, time.Time{}, fmt.Errorf("container %s has already exited: %w", t.id, errdefs.ErrNotFound)
	case tasktypes.Status_CREATED:
		if !ends {
			return false, 0, time.Time{}, nil
		}
		code := uint32(128 + int(sig))
		if t.sandbox {
			code = uint32(sandboxExitCode(sig))
		}
		if err := t.io.CloseOutput(); err != nil {
			log.L.WithError(err).Warn("close the container's output")
		}
		return true, code, t.exitedLocked(code), nil
	}
	if ends {
		t.cancel(&wazerorun.SignalError{Signal: sig})
	}
	return false, 0, time.Time{}, nil
}

// sandboxExitCode mirrors the pause process: SIGTERM and SIGINT are a clean shutdown.
func sandboxExitCode(sig syscall.Signal) int {
	if sig == syscall.SIGTERM || sig == syscall.SIGINT {
		return 0
	}
	return 128 + int(sig)
}

func signalOf(ctx context.Context) syscall.Signal {
	var se *wazerorun.SignalError
	if errors.As(context.Cause(ctx), &se) {
		return se.Signal
	}
	return syscall.SIGKILL
}

func stderrOf(p wazerorun.Process) io.Writer {
	if p.Stderr == nil {
		return io.Discard
	}
	return p.Stderr
}

// state returns the task's status, exit status and exit time.
func (t *task) state() (tasktypes.Status, uint32, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.exitStatus, t.exitedAt
}

// closeStdin closes the guest's stdin (CloseIO).
func (t *task) closeStdin() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.io.CloseStdin()
}

// cleanup releases what newTask acquired: stdio, the compiled module, the cgroup and the rootfs mount.
func (t *task) cleanup(ctx context.Context) error {
	var errs []error
	if t.stopIO != nil {
		t.stopIO()
	}
	if t.io != nil {
		errs = append(errs, t.io.Close())
	}
	if t.module != nil {
		if t.loaded != nil {
			<-t.loaded // the compilation uses the module until then
		}
		errs = append(errs, t.module.Close(ctx))
	}
	if t.cg != nil {
		errs = append(errs, t.cg.leave())
	}
	if t.mounted {
		errs = append(errs, unmountRootfs(t.bundle))
	}
	return errors.Join(errs...)
}
