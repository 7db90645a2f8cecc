package restart_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// restartTimeout bounds one restart in these tests: generous, the machine is shared.
const restartTimeout = 60 * time.Second

func TestNew(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		method  installerapi.RestartMethod
		cfg     restart.Config
		want    string // %T of the Restarter
		wantErr error  // errors.Is target, or nil for "any error" when want == ""
	}{
		"systemd":         {method: "systemd", cfg: restart.Config{Units: []string{"containerd"}, Socket: "/s"}, want: "*restart.Systemd"},
		"signal":          {method: "signal", cfg: restart.Config{Socket: "/s"}, want: "*restart.Signal"},
		"none":            {method: "none", cfg: restart.Config{Socket: "/s"}, want: "restart.None"},
		"unknown":         {method: "reboot", cfg: restart.Config{Socket: "/s"}, wantErr: restart.ErrUnknownMethod},
		"systemd no unit": {method: "systemd", cfg: restart.Config{Socket: "/s"}},
		"no socket":       {method: "none"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r, err := restart.New(tc.method, tc.cfg)
			if tc.want == "" {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("New(%q) error = %v, want %v", tc.method, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", r); got != tc.want {
				t.Errorf("New(%q) = %s, want %s", tc.method, got, tc.want)
			}
		})
	}
}

// fakeHost is a host root holding the static systemctl stand-in (testdata/systemctl) for chroot.
type fakeHost struct {
	root string
}

func newFakeHost(t *testing.T) fakeHost {
	t.Helper()
	bin := containerdtest.Build(t, "./testdata/systemctl")
	h := fakeHost{root: t.TempDir()}
	for _, d := range []string{"usr/bin", "var/log", "etc/fake-systemd"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.root, "usr/bin/systemctl"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h fakeHost) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.root, "etc/fake-systemd", name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// calls returns the argument lists the stand-in recorded, and forgets them.
func (h fakeHost) calls(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(h.root, "var/log/systemctl.calls")
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(path)
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// TestSystemd runs the real chroot and a static systemctl stand-in inside a fake host root (systemd
// cannot run here); `restart` on the stand-in sends SIGTERM to a real supervised containerd 2.4.2, so
// the strategy's wait for the CRI socket is exercised against a daemon that really went away.
func TestSystemd(t *testing.T) {
	t.Parallel()
	h := newFakeHost(t)
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Supervise: true})
	units := []string{"containerd", "k3s", "k3s-agent"}
	h.write(t, "active", "k3s\n")
	h.write(t, "k3s-agent.fail", "Job for k3s-agent.service failed because the control process exited with error code.")

	t.Run("restarts the first active unit", func(t *testing.T) {
		before := d.PID()
		h.write(t, "k3s.pid", strconv.Itoa(before))
		s := &restart.Systemd{HostRoot: h.root, Units: units, Socket: d.Socket()}
		ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
		defer cancel()
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{"is-active_--quiet_containerd", "is-active_--quiet_k3s", "restart_k3s"}
		if got := h.calls(t); !equal(got, want) {
			t.Errorf("systemctl calls = %q, want %q", got, want)
		}
		if after := d.PID(); after == before || after == 0 || d.Restarts() != 1 {
			t.Errorf("PID %d -> %d, %d restarts: want a new containerd after one restart", before, after, d.Restarts())
		}
	})
	t.Run("no active unit", func(t *testing.T) {
		before := d.PID()
		s := &restart.Systemd{HostRoot: h.root, Units: []string{"containerd", "rke2-agent"}, Socket: d.Socket()}
		err := s.Restart(context.Background())
		if !errors.Is(err, restart.ErrNoActiveUnit) || !strings.Contains(err.Error(), "rke2-agent") {
			t.Fatalf("Restart() error = %v, want ErrNoActiveUnit naming the units", err)
		}
		if got, want := h.calls(t), []string{"is-active_--quiet_containerd", "is-active_--quiet_rke2-agent"}; !equal(got, want) {
			t.Errorf("systemctl calls = %q, want %q", got, want)
		}
		if d.PID() != before {
			t.Errorf("containerd PID changed from %d to %d although nothing was restarted", before, d.PID())
		}
	})
	t.Run("no systemctl in the host root", func(t *testing.T) {
		s := &restart.Systemd{HostRoot: t.TempDir(), Units: units, Socket: d.Socket()}
		err := s.Restart(context.Background())
		if err == nil || errors.Is(err, restart.ErrNoActiveUnit) || !strings.Contains(err.Error(), "systemctl") {
			t.Fatalf("Restart() error = %v, want a failure to run systemctl", err)
		}
	})
	t.Run("systemctl restart fails", func(t *testing.T) {
		h.write(t, "active", "k3s-agent\n")
		s := &restart.Systemd{HostRoot: h.root, Units: []string{"k3s-agent"}, Socket: d.Socket()}
		err := s.Restart(context.Background())
		if err == nil || !strings.Contains(err.Error(), "Job for k3s-agent.service failed") {
			t.Fatalf("Restart() error = %v, want systemctl's message", err)
		}
		h.calls(t)
	})
}

// TestSystemdCommand: the host's systemctl runs through chroot unless the host root is this machine's.
func TestSystemdCommand(t *testing.T) {
	t.Parallel()
	for root, want := range map[string]string{
		"":      "systemctl is-active --quiet containerd|systemctl restart containerd",
		"/":     "systemctl is-active --quiet containerd|systemctl restart containerd",
		"/host": "chroot /host systemctl is-active --quiet containerd|chroot /host systemctl restart containerd",
	} {
		var calls []string
		s := &restart.Systemd{HostRoot: root, Units: []string{"containerd"}, Socket: filepath.Join(t.TempDir(), "none.sock"),
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				calls = append(calls, strings.Join(append([]string{name}, args...), " "))
				return nil, nil
			}}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := s.Restart(ctx)
		cancel()
		if !errors.Is(err, cri.ErrNotReady) {
			t.Errorf("host root %q: Restart() = %v, want cri.ErrNotReady (no daemon behind the socket)", root, err)
		}
		if got := strings.Join(calls, "|"); got != want {
			t.Errorf("host root %q: commands %q, want %q", root, got, want)
		}
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestSignal restarts a real supervised containerd (1.6 and 2.4.2) the way k3d's is restarted:
// SIGTERM, the supervisor starts a new process, the CRI socket answers, a running pod survives.
func TestSignal(t *testing.T) {
	t.Parallel()
	for _, v := range []containerdtest.Version{containerdtest.V1, containerdtest.V2} {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			d := containerdtest.Start(t, containerdtest.Options{Version: v, Supervise: true, HostRoot: t.TempDir()})
			pod := d.RunPod("survivor", "")
			s := &restart.Signal{Match: []string{d.ConfigPath()}, Socket: d.Socket()}
			before := d.PID()
			if p, err := s.Find(); err != nil || p.PID != before {
				t.Fatalf("Find() = PID %d, %v; want the daemon's PID %d", p.PID, err, before)
			}
			ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
			defer cancel()
			start := time.Now()
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("containerd %s: SIGTERM -> CRI RuntimeReady again in %v", v, time.Since(start))
			after := d.PID()
			if after == before || after == 0 || d.Restarts() != 1 {
				t.Errorf("PID %d -> %d, %d restarts: want a new containerd after one restart", before, after, d.Restarts())
			}
			if p, err := s.Find(); err != nil || p.PID != after {
				t.Errorf("Find() after restart = PID %d, %v; want %d", p.PID, err, after)
			}
			st := d.WaitReady("runc", true)
			if !st.RuntimeReady {
				t.Errorf("status after restart: %s", st)
			}
			if err := d.PodRunning(pod); err != nil {
				t.Errorf("pod did not survive the restart: %v", err)
			}
		})
	}
}

// TestSignalPrepare: Restart signals the process Prepare found while it still runs, and finds the
// current one when the prepared one has been replaced meanwhile.
func TestSignalPrepare(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Supervise: true, HostRoot: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	s := &restart.Signal{Match: []string{d.ConfigPath()}, Socket: d.Socket()}
	for i, replacedMeanwhile := range []bool{false, true} {
		if err := s.Prepare(); err != nil {
			t.Fatal(err)
		}
		if replacedMeanwhile {
			other := &restart.Signal{Match: []string{d.ConfigPath()}, Socket: d.Socket()}
			if err := other.Restart(ctx); err != nil {
				t.Fatal(err)
			}
		}
		before := d.PID()
		if err := s.Restart(ctx); err != nil {
			t.Fatalf("restart %d (prepared process replaced meanwhile: %t): %v", i, replacedMeanwhile, err)
		}
		if after := d.PID(); after == before || after == 0 {
			t.Errorf("restart %d: PID %d -> %d, want a new containerd", i, before, after)
		}
	}
	if d.Restarts() != 3 {
		t.Errorf("%d restarts, want 3", d.Restarts())
	}
}

// TestSignalAmbiguous runs two daemons: without a distinguishing config path or socket Signal must
// refuse to pick one, and signal none.
func TestSignalAmbiguous(t *testing.T) {
	t.Parallel()
	d1 := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V1, Supervise: true})
	d2 := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V1, Supervise: true})
	pids := []int{d1.PID(), d2.PID()}
	for name, match := range map[string][]string{
		"no match":     nil,
		"unknown path": {"/etc/containerd/config.toml"},
		"both named":   {d1.ConfigPath(), d2.ConfigPath()},
	} {
		t.Run(name, func(t *testing.T) {
			s := &restart.Signal{Match: match, Socket: d1.Socket()}
			if _, err := s.Find(); !errors.Is(err, restart.ErrAmbiguous) {
				t.Errorf("Find() error = %v, want ErrAmbiguous", err)
			}
			if err := s.Restart(context.Background()); !errors.Is(err, restart.ErrAmbiguous) {
				t.Errorf("Restart() error = %v, want ErrAmbiguous", err)
			}
		})
	}
	t.Run("socket named", func(t *testing.T) {
		// The harness starts containerd with --config, so the config path identifies it.
		s := &restart.Signal{Match: []string{d2.Socket(), d2.ConfigPath()}}
		if p, err := s.Find(); err != nil || p.PID != d2.PID() {
			t.Errorf("Find() = PID %d, %v; want %d", p.PID, err, d2.PID())
		}
	})
	if d1.PID() != pids[0] || d2.PID() != pids[1] || d1.Restarts()+d2.Restarts() != 0 {
		t.Errorf("a daemon was restarted: PIDs %v -> [%d %d]", pids, d1.PID(), d2.PID())
	}
}

// TestSignalNotFound: no such process. Restart first waits (within its context) for a containerd that
// might be between two processes to answer on the socket, then looks again and reports the process
// missing.
func TestSignalNotFound(t *testing.T) {
	t.Parallel()
	s := &restart.Signal{Process: "wk-no-such-proc", Socket: "/nonexistent.sock"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Restart(ctx); !errors.Is(err, restart.ErrNotFound) {
		t.Errorf("Restart() error = %v, want ErrNotFound", err)
	}
}

// TestSignalUnsupervised: nothing starts containerd again, so Restart must fail (when its context
// ends) and say why, instead of mistaking another process or the dead socket for success.
func TestSignalUnsupervised(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2})
	s := &restart.Signal{Match: []string{d.ConfigPath()}, Socket: d.Socket()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.Restart(ctx)
	if err == nil || !strings.Contains(err.Error(), "is containerd supervised?") {
		t.Fatalf("Restart() error = %v, want a timeout that asks for a supervisor", err)
	}
	if d.PID() != 0 {
		t.Errorf("containerd still runs as PID %d after SIGTERM", d.PID())
	}
}

// TestSignalZombie: the signalled process's parent does not reap it (like PID 1 on this machine,
// which reaps only every second or two), so it stays a zombie; Signal must count that as exited.
// The stand-in "containerd" is the harness's pause binary under that name; the test plays its
// supervisor, and the socket is a real daemon's.
func TestSignalZombie(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V1})
	bin := filepath.Join(t.TempDir(), "containerd")
	data, err := os.ReadFile(containerdtest.Build(t, "github.com/wasmkube/wasmkube/internal/containerdtest/pause"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "zombie.toml")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	first := start() // not waited for until cleanup: a zombie once it exits
	s := &restart.Signal{Match: []string{cfg}, Socket: d.Socket()}
	waitFor(t, func() bool { p, err := s.Find(); return err == nil && p.PID == first.Process.Pid })
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Restart(ctx) }()
	waitFor(t, func() bool {
		p, err := restart.ReadProcess("/proc", first.Process.Pid)
		return err == nil && p.Zombie()
	})
	select {
	case err := <-done:
		t.Fatalf("Restart returned before a new process was started: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	second := start()
	if err := <-done; err != nil {
		t.Fatalf("Restart() = %v (the old process is a zombie, the new one PID %d)", err, second.Process.Pid)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, restartTimeout, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatal(err)
	}
}

func TestNone(t *testing.T) {
	t.Parallel()
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2})
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	if err := (restart.None{Socket: d.Socket()}).Restart(ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := restart.None{Socket: filepath.Join(d.Paths().Dir, "missing.sock")}.Restart(ctx)
	if !errors.Is(err, cri.ErrNotReady) {
		t.Errorf("Restart() on a missing socket = %v, want cri.ErrNotReady", err)
	}
}

// BenchmarkSignalRestart measures a full signal restart of a supervised containerd: SIGTERM, exit,
// the supervisor's start (after its 50 ms back-off), CRI RuntimeReady; with no pods and with running
// pods, which containerd reconnects to while it starts.
func BenchmarkSignalRestart(b *testing.B) {
	for _, v := range []containerdtest.Version{containerdtest.V1, containerdtest.V2} {
		for _, pods := range []int{0, 3} {
			b.Run(fmt.Sprintf("%s/pods=%d", v, pods), func(b *testing.B) {
				d := containerdtest.Start(b, containerdtest.Options{Version: v, Supervise: true})
				for i := range pods {
					d.RunPod(fmt.Sprintf("bench%d", i), "")
				}
				s := &restart.Signal{Match: []string{d.ConfigPath()}, Socket: d.Socket()}
				for b.Loop() {
					ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
					err := s.Restart(ctx)
					cancel()
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restart")
			})
		}
	}
}
