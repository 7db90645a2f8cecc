package installer

import (
	"context"
	"fmt"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// Verify checks that the handler is served: the shim binary the state file records for it still runs
// (when the installer knows its state file and has a Prober), and the CRI reports the runtime ready
// and the handler present. With present false it checks only that the CRI no longer reports the
// handler. It changes nothing. It holds the node lock (when Profile.StateFile is set), so it answers
// for the node as the last install or uninstall left it, never in the middle of one.
func (in *Installer) Verify(ctx context.Context, handler string, present bool) (r installerapi.Result) {
	start := in.now()
	r = installerapi.Result{Operation: installerapi.OpVerify, Handler: handler, Distro: in.Profile.Distro}
	defer func() { r.DurationMS = in.now().Sub(start).Milliseconds() }()
	s := in.begin(&r)
	if in.Profile.StateFile != "" {
		lock, err := in.lockNode(ctx, "verify of handler "+handler)
		if s.done(StepLock, err) != nil {
			r.Fail(reasonOf(err), err)
			return r
		}
		defer lock.unlock()
	}
	if present {
		binary, err := in.recordedBinary(handler)
		if err == nil && binary != "" {
			r.BinaryPath = binary
			r.ShimVersion, err = in.probe(ctx, binary)
		}
		if s.done(StepBinary, err) != nil {
			r.Fail(reasonOf(err), fmt.Errorf("handler %s: %w", handler, err))
			return r
		}
	}
	err := in.waitReady(ctx, handler, present)
	s.done(StepVerify, err)
	if err != nil {
		want := "present"
		if !present {
			want = "absent"
		}
		r.Fail(installerapi.ReasonVerifyFailed, fmt.Errorf("handler %s not %s: %w", handler, want, err))
		return r
	}
	r.Success = true
	return r
}

// recordedBinary is the binary of the handler's installed entry in the state file; "" when there is
// no state file to read (verify run with only a CRI socket) or no installed entry.
func (in *Installer) recordedBinary(handler string) (string, error) {
	if in.Host.Files == nil || in.Profile.StateFile == "" {
		return "", nil
	}
	st, err := loadState(in.Host.Files, in.Profile.StateFile)
	if err != nil {
		return "", fail(installerapi.ReasonStateFailed, err)
	}
	if e := st.Shims[handler]; e != nil && e.Phase == PhaseInstalled {
		return e.BinaryPath, nil
	}
	return "", nil
}
