package installer

import (
	"context"
	"fmt"

	"github.com/wasmkube/wasmkube/internal/installer/result"
)

// Verify checks through the CRI that the runtime is ready and the handler is present (or absent when
// present is false). It changes nothing. It holds the node lock (when Target.StateFile is set), so it
// answers for the node as the last install or uninstall left it, never in the middle of one.
func (in *Installer) Verify(ctx context.Context, handler string, present bool) (r result.Result) {
	start := in.now()
	r = result.Result{Operation: result.OpVerify, Handler: handler, Distro: in.Target.Distro}
	defer func() { r.DurationMS = in.now().Sub(start).Milliseconds() }()
	s := in.begin(&r)
	if in.Target.StateFile != "" {
		lock, err := in.lockNode(ctx, "verify of handler "+handler)
		if s.done(StepLock, err) != nil {
			r.Fail(reasonOf(err), err)
			return r
		}
		defer lock.unlock()
	}
	err := in.waitReady(ctx, handler, present)
	s.done(StepVerify, err)
	if err != nil {
		want := "present"
		if !present {
			want = "absent"
		}
		r.Fail(result.ReasonVerifyFailed, fmt.Errorf("handler %s not %s: %w", handler, want, err))
		return r
	}
	r.Success = true
	return r
}
