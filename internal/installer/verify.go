package installer

import (
	"context"
	"fmt"

	"github.com/wasmkube/wasmkube/internal/installer/result"
)

// Verify checks through the CRI that the runtime is ready and the handler is present (or absent when
// present is false). It changes nothing.
func (in *Installer) Verify(ctx context.Context, handler string, present bool) (r result.Result) {
	start := in.now()
	r = result.Result{Operation: result.OpVerify, Handler: handler, Distro: in.Target.Distro}
	s := in.begin(&r)
	err := in.waitReady(ctx, handler, present)
	s.done(StepVerify, err)
	r.DurationMS = in.now().Sub(start).Milliseconds()
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
