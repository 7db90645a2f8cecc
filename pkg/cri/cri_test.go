package cri_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/pkg/cri"
)

// TestWaitReady drives real containerd 1.6 and 2.4.2: the runc handler (and its runtime_type) is read
// from each version's own way of reporting handlers, and waits for a handler that is not there time
// out with the last status in the error.
func TestWaitReady(t *testing.T) {
	t.Parallel()
	for _, v := range []containerdtest.Version{containerdtest.V1, containerdtest.V2} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			d := containerdtest.Start(t, containerdtest.Options{Version: v})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			st, err := cri.WaitReady(ctx, d.Socket(), "runc", true)
			if err != nil {
				t.Fatal(err)
			}
			if !st.RuntimeReady || st.Handlers["runc"].Type != "io.containerd.runc.v2" {
				t.Errorf("status = %s, runc = %+v: want ready with runc of type io.containerd.runc.v2", st, st.Handlers["runc"])
			}
			if v == containerdtest.V2 {
				// 2.x reports handlers natively too (1.6 only inside the verbose config JSON).
				resp, err := d.Client().Runtime().Status(ctx, &runtimeapi.StatusRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(resp.GetRuntimeHandlers(), func(h *runtimeapi.RuntimeHandler) bool { return h.GetName() == "runc" }) {
					t.Errorf("containerd 2.x runtimeHandlers = %v, want runc listed", resp.GetRuntimeHandlers())
				}
			}
			if _, err := cri.WaitReady(ctx, "unix://"+d.Socket(), "wazero", false); err != nil {
				t.Errorf("wait for an absent handler: %v", err)
			}

			short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			st, err = cri.WaitReady(short, d.Socket(), "wazero", true)
			if !errors.Is(err, cri.ErrNotReady) || !strings.Contains(err.Error(), `handler "wazero" listed`) || !strings.Contains(err.Error(), "handlers=[runc]") {
				t.Errorf("wait for a missing handler: error = %v, want ErrNotReady with the last status", err)
			}
			if st == nil || !st.HasHandler("runc") {
				t.Errorf("wait for a missing handler returned status %v, want the last status read", st)
			}
		})
	}
}

func TestWaitReadyNoSocket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	socket := filepath.Join(t.TempDir(), "none.sock")
	st, err := cri.WaitReady(ctx, socket, "", true)
	if !errors.Is(err, cri.ErrNotReady) || !strings.Contains(err.Error(), "last error") || st != nil {
		t.Errorf("WaitReady on a missing socket = %v, %v; want ErrNotReady with the last error", st, err)
	}
	if _, err := cri.Dial(ctx, ""); err == nil {
		t.Error("Dial with an empty socket path succeeded")
	}
	if _, err := cri.WaitReady(context.Background(), "unix://", "", true); err == nil || errors.Is(err, cri.ErrNotReady) {
		t.Errorf("WaitReady with an empty socket path = %v, want an immediate configuration error", err)
	}
}
