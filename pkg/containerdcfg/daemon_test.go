package containerdcfg_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// TestDaemonListsPatchedRuntime is the real-daemon proof of the patcher: containerd 1.6 (version-2
// config) and 2.4.2 (version-3 and version-4 configs) start from a patched config on private paths,
// and the CRI Status call (through pkg/cri, not crictl text) lists the new handler with its
// runtime_type; a pod sandbox and container start through it. Removing the runtime restores the
// original bytes, and after a restart the handler is gone.
func TestDaemonListsPatchedRuntime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version       containerdtest.Version
		configVersion int
	}{
		{containerdtest.V1, 2},
		{containerdtest.V2, 3},
		{containerdtest.V2, 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/config-v%d", tc.version, tc.configVersion), func(t *testing.T) {
			t.Parallel()
			paths := containerdtest.NewPaths(t, "")
			original := containerdtest.Config(tc.configVersion, paths)
			rt := containerdcfg.Runtime{
				Handler: "wasmkube-test",
				Type:    "io.containerd.runc.v2",
				Options: []containerdcfg.Option{
					{Key: "BinaryName", Value: paths.Runc},
					{Key: "Root", Value: paths.RuncRoot},
					{Key: "SystemdCgroup", Value: false},
				},
			}
			patched, err := containerdcfg.AddRuntime(original, rt, containerdcfg.PatchOptions{})
			if err != nil {
				t.Fatalf("AddRuntime: %v", err)
			}
			d := containerdtest.Start(t, containerdtest.Options{Version: tc.version, Paths: &paths, Config: patched})

			st := d.WaitReady(rt.Handler, true)
			if got := st.Handlers[rt.Handler].Type; got != rt.Type {
				t.Errorf("CRI lists %s with runtime_type %q, want %q (status %s)", rt.Handler, got, rt.Type, st)
			}
			if !st.HasHandler("runc") {
				t.Errorf("the default runc handler vanished: %s", st)
			}
			pod := d.RunPod("patched", rt.Handler)
			if err := d.PodRunning(pod); err != nil {
				t.Errorf("pod through handler %s: %v", rt.Handler, err)
			}

			removed, err := containerdcfg.RemoveRuntime(patched, rt.Handler, containerdcfg.PatchOptions{})
			if err != nil {
				t.Fatalf("RemoveRuntime: %v", err)
			}
			if !bytes.Equal(removed, original) {
				t.Fatalf("RemoveRuntime(AddRuntime(x)) != x:\n%s", removed)
			}
			if err := os.WriteFile(d.ConfigPath(), removed, 0o644); err != nil {
				t.Fatal(err)
			}
			d.Restart()
			if st := d.WaitReady(rt.Handler, false); !st.HasHandler("runc") {
				t.Errorf("after removal: %s, want runc only", st)
			}
		})
	}
}
