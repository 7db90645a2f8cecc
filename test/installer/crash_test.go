package installer

import (
	"bytes"
	"testing"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/installer"
)

// A node-installer killed by SIGKILL after any step (the CrashAfterEnv test hook),
// then run again, converges: the handler is live, a pod runs through it, the state is committed, and a
// restart that already happened is not repeated. The same holds for uninstall.
func TestCrashAfterEachStepConverges(t *testing.T) {
	const crashEnv = "WASMKUBE_TEST_CRASH_AFTER="
	for _, step := range []string{installer.StepPlan, installer.StepIntent, installer.StepFetch, installer.StepBinary,
		installer.StepConfig, installer.StepRestart, installer.StepVerify, installer.StepCommit} {
		t.Run("install-"+step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, containerdtest.V2, 3)
			before := n.read(configPath)
			if r := n.install([]string{crashEnv + step}); !r.killed {
				t.Fatalf("install did not die after %s: %v %+v", step, r.err, r.result)
			}
			restarted := n.d.Restarts()
			r := n.install(nil).mustSucceed(t, "install after crash")
			if restarted == 1 && r.Restarted {
				t.Errorf("re-run restarted containerd again after a crash at %s", step)
			}
			if n.d.Restarts() != 1 {
				t.Errorf("containerd restarted %d times in total, want 1", n.d.Restarts())
			}
			if !bytes.Equal(n.read(n.binPath), n.shim) {
				t.Error("binary wrong after convergence")
			}
			if err := n.d.PodRunning(n.d.RunPod("after-crash", shim)); err != nil {
				t.Fatalf("pod after crash at %s: %v", step, err)
			}
			if r := n.install(nil).mustSucceed(t, "third install"); r.Changed {
				t.Errorf("install after convergence changed something: %+v", r)
			}
			n.uninstall(nil).mustSucceed(t, "uninstall")
			if !bytes.Equal(n.read(configPath), before) {
				t.Error("config not restored after crash, re-run and uninstall")
			}
		})
	}
	for _, step := range []string{installer.StepIntent, installer.StepConfig, installer.StepRestart, installer.StepVerify, installer.StepBinary} {
		t.Run("uninstall-"+step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, containerdtest.V2, 4)
			before := n.read(configPath)
			n.install(nil).mustSucceed(t, "install")
			if r := n.uninstall([]string{crashEnv + step}); !r.killed {
				t.Fatalf("uninstall did not die after %s: %v %+v", step, r.err, r.result)
			}
			n.uninstall(nil).mustSucceed(t, "uninstall after crash")
			if n.d.Restarts() != 2 {
				t.Errorf("containerd restarted %d times in total, want 2 (install, uninstall)", n.d.Restarts())
			}
			if !bytes.Equal(n.read(configPath), before) || n.exists(n.binPath) || n.exists(stateFile) {
				t.Error("uninstall did not converge")
			}
			n.d.WaitReady(shim, false)
		})
	}
}
