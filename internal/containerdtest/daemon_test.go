package containerdtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

var versions = []containerdtest.Version{containerdtest.V1, containerdtest.V2}

// TestDaemon: each version starts from the node-like host root layout, runs a pod through CRI on its
// own CNI bridge, and a supervised restart brings a new process with the pod still running.
func TestDaemon(t *testing.T) {
	t.Parallel()
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			host := t.TempDir()
			d := containerdtest.Start(t, containerdtest.Options{Version: v, Supervise: true, HostRoot: host})
			st := d.WaitReady("runc", true)
			if got := st.Handlers["runc"].Type; got != "io.containerd.runc.v2" || !st.NetworkReady {
				t.Errorf("status %s, runc type %q: want network ready and runc of type io.containerd.runc.v2", st, got)
			}
			if want := filepath.Join(host, "etc/containerd/config.toml"); d.ConfigPath() != want {
				t.Errorf("ConfigPath() = %s, want %s", d.ConfigPath(), want)
			}
			if target, err := os.Readlink(filepath.Join(host, "run/containerd/containerd.sock")); err != nil || target != d.Socket() {
				t.Errorf("host root socket link -> %q, %v; want %s", target, err, d.Socket())
			}
			if len(d.Socket()) >= 108 {
				t.Errorf("socket path %s is too long for a unix socket", d.Socket())
			}
			if out, err := d.Ctr("images", "ls", "-q"); err != nil || !strings.Contains(out, containerdtest.PauseImage) {
				t.Errorf("ctr images ls = %q, %v; want %s listed", out, err, containerdtest.PauseImage)
			}
			before := d.PID()
			pod := d.RunPod("p1", "")
			if err := d.PodRunning(pod); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join("/sys/class/net", d.Paths().Bridge)); err != nil {
				t.Errorf("the pod did not use the daemon's own bridge: %v", err)
			}
			d.Restart()
			if after := d.PID(); after == before || after == 0 || d.Restarts() != 1 {
				t.Errorf("PID %d -> %d after %d restarts: want a new process after one restart", before, after, d.Restarts())
			}
			if err := d.PodRunning(pod); err != nil {
				t.Errorf("pod after restart: %v", err)
			}
			if !strings.Contains(d.Logs(), "containerdtest: ") {
				t.Errorf("Logs() lacks the harness's start markers:\n%s", d.Logs())
			}
		})
	}
}

// TestSupervisorCrashLoop: a config containerd refuses makes the supervised daemon fail at every
// start; once the config is fixed, the supervisor's next start succeeds (the installer's rollback
// relies on this).
func TestSupervisorCrashLoop(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Supervise: true})
	good, err := os.ReadFile(d.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.ConfigPath(), []byte("version = 99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(d.PID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Two failed starts after the SIGTERM: the daemon is crash-looping, not up.
	poll(t, func() bool { return d.Restarts() >= 3 })
	if err := os.WriteFile(d.ConfigPath(), good, 0o644); err != nil {
		t.Fatal(err)
	}
	d.WaitReady("runc", true)
	if !strings.Contains(d.Logs(), "99") {
		t.Errorf("the log does not show why containerd refused the config:\n%s", d.Logs())
	}
}

// TestStopAndRestart: Stop ends supervision (nothing comes back); Restart starts the daemon again.
func TestStopAndRestart(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V1, Supervise: true})
	pid := d.PID()
	d.Stop()
	if d.PID() != 0 {
		t.Fatalf("PID() = %d after Stop", d.PID())
	}
	if p, err := restart.ReadProcess("/proc", pid); err == nil && !p.Zombie() {
		t.Fatalf("containerd PID %d still runs after Stop: %+v", pid, p)
	}
	time.Sleep(300 * time.Millisecond) // longer than the supervisor's back-off: it must not restart
	if d.PID() != 0 || d.Restarts() != 0 {
		t.Fatalf("the supervisor restarted a stopped daemon: PID %d, %d restarts", d.PID(), d.Restarts())
	}
	d.Restart()
	if d.PID() == 0 || d.PID() == pid || d.Restarts() != 1 {
		t.Errorf("after Restart: PID %d (was %d), %d restarts", d.PID(), pid, d.Restarts())
	}
	d.WaitReady("runc", true)
}

// TestCleanup: after a test ends, nothing of its daemon is left: not the process, shims, pod
// processes, mounts, the bridge nor the files, also when the daemon was stopped with pods running.
func TestCleanup(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop bool
	}{{"pods removed", false}, {"daemon stopped with running pods", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				paths         containerdtest.Paths
				pids          []int
				files, groups []string // shim sockets, the pod's memory cgroups
			)
			t.Run("daemon", func(t *testing.T) {
				d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Supervise: true})
				d.RunPod("leftover", "")
				paths = d.Paths()
				var shims []restart.Process
				shims, pids = processesOf(t, paths.Socket)
				if len(shims) == 0 {
					t.Fatal("no shim found for the pod")
				}
				for _, p := range shims {
					files = append(files, containerdtest.ShimSocket(paths.Socket, flag(p.Args, "namespace"), flag(p.Args, "id")))
				}
				for _, pid := range pids[len(shims):] { // the pod's processes; shims stay in the test's cgroup
					groups = append(groups, memoryCgroup(t, pid))
				}
				if len(groups) == 0 {
					t.Fatal("no pod processes found below the shims")
				}
				for _, f := range append(files, groups...) {
					if _, err := os.Stat(f); err != nil {
						t.Errorf("expected %s while the pod runs: %v", f, err)
					}
				}
				pids = append(pids, d.PID())
				if tc.stop {
					d.Stop()
				}
			})
			for _, pid := range pids {
				if p, err := restart.ReadProcess("/proc", pid); err == nil && !p.Zombie() {
					t.Errorf("process %d (%s) outlived the test", pid, strings.Join(p.Args, " "))
				}
			}
			if _, err := os.Stat(paths.Dir); !os.IsNotExist(err) {
				t.Errorf("daemon dir %s still exists: %v", paths.Dir, err)
			}
			if _, err := os.Stat(filepath.Join("/sys/class/net", paths.Bridge)); !os.IsNotExist(err) {
				t.Errorf("bridge %s still exists: %v", paths.Bridge, err)
			}
			for _, f := range append(files, groups...) {
				if _, err := os.Stat(f); !os.IsNotExist(err) {
					t.Errorf("%s outlived the test: %v", f, err)
				}
			}
			mounts, err := os.ReadFile("/proc/self/mountinfo")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(mounts), paths.Dir+"/") {
				t.Errorf("mounts under %s remain", paths.Dir)
			}
		})
	}
}

// processesOf returns the shims serving socket and the PIDs of their descendants (the pod's processes).
func processesOf(t *testing.T, socket string) (shims []restart.Process, pids []int) {
	t.Helper()
	procs, err := restart.Processes("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if flag(p.Args, "address") == socket {
			shims = append(shims, p)
			pids = append(pids, p.PID)
		}
	}
	for i := 0; i < len(pids); i++ {
		for _, p := range procs {
			if p.PPID == pids[i] {
				pids = append(pids, p.PID)
			}
		}
	}
	return shims, pids
}

func flag(args []string, name string) string {
	if i := slices.Index(args, "-"+name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// memoryCgroup returns the directory of pid's memory cgroup (cgroup v1 on the test machines; the
// unified hierarchy otherwise).
func memoryCgroup(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "memory") {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2])
		}
		if len(parts) == 3 && parts[0] == "0" && parts[1] == "" {
			return filepath.Join("/sys/fs/cgroup", parts[2])
		}
	}
	t.Fatalf("no memory cgroup for PID %d in %q", pid, b)
	return ""
}

func poll(t *testing.T, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatal(err)
	}
}
