package wazerorun

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmkube/wasmkube/internal/wazerofs"
)

// ExitTrap is the exit code of a module that trapped (or failed to instantiate) instead of exiting.
const ExitTrap = 1

// Mount makes a host directory visible to the guest. Every path the guest resolves in it stays
// inside it (see internal/wazerofs).
type Mount struct {
	HostPath  string // directory on the host
	GuestPath string // absolute path inside the guest
	ReadOnly  bool   // refuse every change with EROFS
}

// Process is one run of a module.
type Process struct {
	Args   []string // WASI argv
	Env    []string // KEY=VALUE
	Entry  string   // exported function to call; "" means _start
	Mounts []Mount  // the container rootfs at "/" first, then volumes
	// Creds are the credentials the guest's file operations run with (nil: the caller's own).
	Creds *wazerofs.Creds
	// Umask is cleared from the mode of new files and directories; nil means wazerofs.DefaultUmask.
	Umask  *uint32
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Result is how a run ended.
type Result struct {
	// ExitCode is the guest's proc_exit code, 0 when the entry function returned, ExitTrap after a
	// trap, or 128+signal when the run was stopped by cancelling its context with a SignalError
	// or killed for exceeding the memory limit (137).
	ExitCode int
	// Signal is the signal that stopped the run, 0 when the guest ended on its own.
	Signal syscall.Signal
	// MemoryLimitExceeded is true when the guest asked for more linear memory than the limit: it
	// was killed then, as the kernel's OOM killer ends a process over its cgroup's memory limit.
	MemoryLimitExceeded bool
}

// SignalError is the cancellation cause (context.WithCancelCause) that stops a running guest;
// Run then reports 128+Signal as the exit code.
type SignalError struct{ Signal syscall.Signal }

func (e *SignalError) Error() string {
	return fmt.Sprintf("stopped by signal %d (%s)", int(e.Signal), e.Signal)
}

// Run instantiates the module and calls its entry function until it returns, exits or ctx is done.
// Cancelling ctx stops the guest promptly, also while it sleeps or waits in poll_oneoff; the
// cancellation cause decides the reported signal (SIGKILL unless it is a *SignalError). A guest
// that asks for more linear memory than the limit is killed (SIGKILL, MemoryLimitExceeded).
// Traps and refused memory growth are explained on p.Stderr, so they show in the container log.
// The error is non-nil only when the run could not happen at all (bad mount, missing entry).
func (m *Module) Run(ctx context.Context, p Process) (Result, error) {
	entry := p.Entry
	if entry == "" {
		entry = StartFunction
	}
	if err := m.CheckEntry(entry); err != nil {
		return Result{}, err
	}
	stderr := p.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	fsc, mounts, err := mountAll(p)
	defer closeAll(mounts)
	if err != nil {
		return Result{}, err
	}
	ctx, kill := context.WithCancelCause(ctx)
	defer kill(nil)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(p.Args...).
		WithFSConfig(fsc).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleeper(ctx)).
		WithRandSource(rand.Reader).
		WithStderr(stderr).
		WithStartFunctions()
	if p.Stdin != nil {
		mc = mc.WithStdin(p.Stdin)
	}
	if p.Stdout != nil {
		mc = mc.WithStdout(p.Stdout)
	}
	for _, kv := range p.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}

	alloc := &allocator{limit: m.limit, onRefuse: func() { kill(&SignalError{Signal: syscall.SIGKILL}) }}
	defer alloc.release()
	res, err := m.call(experimental.WithMemoryAllocator(ctx, alloc), mc, entry)
	if err != nil {
		res = m.failed(ctx, stderr, err)
	}
	if want := alloc.refused(); want > 0 {
		// The guest may have ended on its own after the refusal (a Go guest exits 2, out of memory)
		// before the kill stopped it; either way it was out of memory.
		res = Result{ExitCode: 128 + int(syscall.SIGKILL), Signal: syscall.SIGKILL, MemoryLimitExceeded: true}
		fmt.Fprintf(stderr, "wazero: memory limit exceeded: the module asked for %s of linear memory, the container's limit is %s: killed\n",
			mib(want), mib(m.limit))
	}
	return res, nil
}

// mountAll opens every mount as a confined wazerofs.FS. The caller closes them (closeAll) once the
// guest has stopped, also after an error.
func mountAll(p Process) (wazero.FSConfig, []*wazerofs.FS, error) {
	umask := uint32(wazerofs.DefaultUmask)
	if p.Umask != nil {
		umask = *p.Umask
	}
	var opened []*wazerofs.FS
	fsc := wazero.NewFSConfig()
	for _, mt := range p.Mounts {
		f, err := wazerofs.Open(mt.HostPath, wazerofs.Options{ReadOnly: mt.ReadOnly, Creds: p.Creds, Umask: umask})
		if err != nil {
			return nil, opened, fmt.Errorf("mount %s at %s: %w", mt.HostPath, mt.GuestPath, err)
		}
		opened = append(opened, f)
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(f, mt.GuestPath)
	}
	return fsc, opened, nil
}

// closeAll closes the mounts' directory descriptors (which cannot fail in a way worth reporting).
func closeAll(mounts []*wazerofs.FS) {
	for _, f := range mounts {
		_ = f.Close()
	}
}

// call instantiates the module and calls entry (after _initialize, for reactors).
func (m *Module) call(ctx context.Context, mc wazero.ModuleConfig, entry string) (Result, error) {
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, mc)
	if err != nil {
		return Result{}, err
	}
	defer mod.Close(context.WithoutCancel(ctx))
	if entry != StartFunction {
		if init := exportedFunction(mod, "_initialize"); init != nil {
			if _, err := init.Call(ctx); err != nil {
				return Result{}, err
			}
		}
	}
	if _, err := exportedFunction(mod, entry).Call(ctx); err != nil {
		return Result{}, err
	}
	return Result{}, nil
}

// failed turns the error that ended a run into its Result.
func (m *Module) failed(ctx context.Context, stderr io.Writer, err error) Result {
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() != sys.ExitCodeContextCanceled && exit.ExitCode() != sys.ExitCodeDeadlineExceeded {
		return Result{ExitCode: int(exit.ExitCode())}
	}
	if ctx.Err() != nil {
		sig := syscall.SIGKILL
		var se *SignalError
		if errors.As(context.Cause(ctx), &se) {
			sig = se.Signal
		}
		return Result{ExitCode: 128 + int(sig), Signal: sig}
	}
	fmt.Fprintf(stderr, "wazero: %v\n", err)
	return Result{ExitCode: ExitTrap}
}

// sleeper is the guest's nanosleep (behind poll_oneoff): a timer that ends early when ctx is done,
// after which wazero's context check stops the guest.
func sleeper(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		if ns <= 0 {
			return
		}
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
