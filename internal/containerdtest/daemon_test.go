package containerdtest_test

import (
	"strings"
	"testing"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

func TestDaemon(t *testing.T) {
	for _, v := range []containerdtest.Version{containerdtest.V1, containerdtest.V2} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			d := containerdtest.Start(t, containerdtest.Options{Version: v, Supervise: true, HostRoot: t.TempDir()})
			st := d.WaitReady("runc", true)
			if got := st.Handlers["runc"].Type; got != "io.containerd.runc.v2" {
				t.Errorf("runc handler type = %q, want io.containerd.runc.v2 (status %s)", got, st)
			}
			if !strings.HasPrefix(d.ConfigPath(), d.Paths().HostRoot) {
				t.Errorf("config %s is not under the host root %s", d.ConfigPath(), d.Paths().HostRoot)
			}
			pid := d.PID()
			pod := d.RunPod("p1", "")
			if err := d.PodRunning(pod); err != nil {
				t.Fatal(err)
			}
			d.Restart()
			if d.PID() == pid || d.PID() == 0 {
				t.Errorf("PID after restart = %d, before %d: want a new process", d.PID(), pid)
			}
			if d.Restarts() != 1 {
				t.Errorf("Restarts() = %d, want 1", d.Restarts())
			}
			if err := d.PodRunning(pod); err != nil {
				t.Errorf("pod after restart: %v", err)
			}
			t.Logf("status: %s", st)
		})
	}
}
