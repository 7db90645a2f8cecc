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
	// trap, or 128+signal when the run was stopped by cancelling its context with a SignalError.
	ExitCode int
	// Signal is the signal that stopped the run, 0 when the guest ended on its own.
	Signal syscall.Signal
	// MemoryLimitExceeded is true when the guest asked for more linear memory than the limit and was refused.
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
// cancellation cause decides the reported signal (SIGKILL unless it is a *SignalError).
// Traps and refused memory growth are explained on p.Stderr, so they show in the container log.
// The error is non-nil only when the run could not happen at all (bad mount, missing entry).
func (m *Module) Run(ctx context.Context, p Process) (_ Result, err error) {
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
	fsc, closeMounts, err := mountAll(p)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, closeMounts()) }()
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

	alloc := &allocator{limit: m.limit}
	defer alloc.release()
	res, err := m.call(experimental.WithMemoryAllocator(ctx, alloc), mc, entry)
	if err != nil {
		res = m.failed(ctx, stderr, err)
	}
	if want := alloc.refused(); want > 0 {
		res.MemoryLimitExceeded = true
		fmt.Fprintf(stderr, "wazero: memory limit exceeded: the module asked for %s of linear memory, the container's limit is %s\n",
			mib(want), mib(m.limit))
	}
	return res, nil
}

// mountAll opens every mount as a confined wazerofs.FS; closeMounts releases them once the guest
// has stopped.
func mountAll(p Process) (_ wazero.FSConfig, closeMounts func() error, _ error) {
	umask := uint32(wazerofs.DefaultUmask)
	if p.Umask != nil {
		umask = *p.Umask
	}
	var opened []*wazerofs.FS
	closeMounts = func() error {
		var errs []error
		for _, f := range opened {
			errs = append(errs, f.Close())
		}
		return errors.Join(errs...)
	}
	fsc := wazero.NewFSConfig()
	for _, mt := range p.Mounts {
		f, err := wazerofs.Open(mt.HostPath, wazerofs.Options{ReadOnly: mt.ReadOnly, Creds: p.Creds, Umask: umask})
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("mount %s at %s: %w", mt.HostPath, mt.GuestPath, err), closeMounts())
		}
		opened = append(opened, f)
		fsc = fsc.(sysfs.FSConfig).WithSysFSMount(f, mt.GuestPath)
	}
	return fsc, closeMounts, nil
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
