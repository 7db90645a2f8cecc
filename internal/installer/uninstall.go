package installer

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// Uninstall removes what one Shim installed for a handler: its runtime block and nothing else (other
// Shims' blocks and other edits of the file stay; a file that held only wasmkube's blocks is byte for
// byte what it was before them), restarts containerd if the configuration changed, verifies the handler
// is gone, then removes the Shim's binary, backups and state entry. runtimeType is only used when the
// state file has no entry for the handler (then the binary's name comes from it; "" leaves binaries
// alone). A handler that belongs to another Shim is left alone: this Shim has nothing there. A failed
// uninstall keeps its state entry, so running it again finishes the job.
func (in *Installer) Uninstall(ctx context.Context, shim, handler, runtimeType string) (r installerapi.Result) {
	start := in.now()
	r = installerapi.Result{Operation: installerapi.OpUninstall, Shim: shim, Handler: handler, Distro: in.Profile.Distro}
	defer func() {
		r.Changed = r.ConfigChanged || r.BinaryChanged || r.Restarted
		r.DurationMS = in.now().Sub(start).Milliseconds()
	}()
	s := in.begin(&r)
	if err := in.uninstall(ctx, shim, handler, runtimeType, s, &r); err != nil {
		r.Fail(reasonOf(err), err)
		return r
	}
	r.Success = true
	return r
}

func (in *Installer) uninstall(ctx context.Context, shim, handler, runtimeType string, s *stepper, r *installerapi.Result) error {
	t, files := in.Profile, in.Host.Files
	if err := in.validateProfile(); err != nil {
		return err
	}
	if handler == "" {
		return fmt.Errorf("%w: handler is required", ErrInvalid)
	}
	lock, err := in.lockNode(ctx, fmt.Sprintf("uninstall of Shim %s, handler %s", shim, handler))
	if s.done(StepLock, err) != nil {
		return err
	}
	defer lock.unlock()
	st, err := loadState(files, t.StateFile)
	if err != nil {
		return s.done(StepPlan, fail(installerapi.ReasonStateFailed, err))
	}
	e := st.Shims[handler]
	if e != nil && e.Shim != shim {
		return s.done(StepPlan, nil) // another Shim's handler: nothing of this Shim's is here
	}
	if e == nil {
		// Nothing recorded (state lost, or never installed): remove whatever is marked as ours.
		e = &Entry{Shim: shim, Handler: handler, RuntimeType: runtimeType, ConfigPath: in.configFile(handler)}
		if runtimeType != "" {
			bin, err := BinaryName(handler, runtimeType)
			if err != nil {
				return s.done(StepPlan, err)
			}
			e.BinaryPath = path.Join(t.ShimDir, bin)
		}
	}
	r.ConfigPath, r.BinaryPath = e.ConfigPath, e.BinaryPath
	if err := in.removeTemps(handler, e.ConfigPath, e.BinaryPath); err != nil {
		return s.done(StepPlan, err)
	}

	cur, exists, err := readOptional(files, e.ConfigPath)
	if err != nil {
		return s.done(StepPlan, fail(installerapi.ReasonConfigWriteFailed, fmt.Errorf("read containerd config %s: %w", e.ConfigPath, err)))
	}
	desired, keep, err := in.withoutRuntime(st, e, cur, exists)
	if s.done(StepPlan, err) != nil {
		return err
	}
	configChanges := exists && (!keep || !bytes.Equal(cur, desired))
	// The binary is this entry's own unless another entry names it too (an older installer's shared name).
	ownBinary := e.BinaryPath != "" && st.binaryUser(handler, e.BinaryPath) == nil
	_, binErr := files.Stat(e.BinaryPath)
	binaryPresent := ownBinary && binErr == nil
	recorded := st.Shims[handler] != nil

	if recorded || configChanges {
		if e.Phase != PhaseRemoved {
			e.Phase = PhaseUninstalling
		}
		e.NeedRestart = e.NeedRestart || configChanges
		st.Shims[handler] = e
		if err := st.save(files, t.StateFile); err != nil {
			return s.done(StepIntent, fail(installerapi.ReasonStateFailed, err))
		}
	}
	s.done(StepIntent, nil)

	if configChanges {
		if r.ConfigChanged, err = in.putConfig(e.ConfigPath, cur, exists, desired, keep, modeOf(files, e.ConfigPath)); err != nil {
			return s.done(StepConfig, fail(installerapi.ReasonConfigWriteFailed, fmt.Errorf("remove runtime %s: %w", handler, err)))
		}
	}
	s.done(StepConfig, nil)

	if e.NeedRestart && e.Phase != PhaseRemoved {
		if err := in.Host.Restarter.Restart(ctx); err != nil {
			return s.done(StepRestart, fail(installerapi.ReasonRestartFailed, fmt.Errorf("restart containerd after removing runtime %s: %w", handler, err)))
		}
		r.Restarted = true
		e.Phase = PhaseRemoved
		if err := st.save(files, t.StateFile); err != nil {
			return s.done(StepRestart, fail(installerapi.ReasonStateFailed, err))
		}
		s.done(StepRestart, nil)
	}

	if err := in.waitReady(ctx, handler, false); err != nil {
		return s.done(StepVerify, fail(installerapi.ReasonVerifyFailed, fmt.Errorf("handler %s after uninstall: %w", handler, err)))
	}
	s.done(StepVerify, nil)

	// The binary goes only now: containerd no longer names it. Running shims keep their open file.
	if binaryPresent {
		if err := files.Remove(e.BinaryPath); err != nil {
			return s.done(StepBinary, fail(installerapi.ReasonBinaryFailed, fmt.Errorf("remove shim binary %s: %w", e.BinaryPath, err)))
		}
		r.BinaryChanged = true
	}
	s.done(StepBinary, nil)

	if recorded {
		delete(st.Shims, handler)
		st.forget(e.ConfigPath)
		if err := st.save(files, t.StateFile); err != nil {
			return s.done(StepCommit, fail(installerapi.ReasonStateFailed, err))
		}
		files.RemoveAll(backupDir(t.StateFile, handler))
	}
	return s.done(StepCommit, nil)
}

// withoutRuntime computes the configuration file without the handler's block; keep=false means the
// file should be deleted (the handler's drop-in, or a file wasmkube created that holds nothing else).
func (in *Installer) withoutRuntime(st *State, e *Entry, cur []byte, exists bool) (desired []byte, keep bool, err error) {
	t := in.Profile
	if !exists || t.Config.Mode == distro.ModeDropIn {
		return nil, false, nil
	}
	out, err := containerdcfg.RemoveRuntime(cur, e.Handler, in.patchOptions())
	if err != nil {
		return nil, false, fail(configReason(err), fmt.Errorf("containerd config %s left untouched: %w", e.ConfigPath, err))
	}
	return out, in.keepConfig(st, e.Handler, e.ConfigPath, out), nil
}
func modeOf(files Files, p string) fs.FileMode {
	if fi, err := files.Stat(p); err == nil {
		return fi.Mode().Perm()
	}
	return 0o644
}
