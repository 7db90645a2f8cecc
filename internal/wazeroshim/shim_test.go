package wazeroshim_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/pkg/protobuf/proto"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/internal/wazeroshim"
)

// create sends a CreateTaskRequest for the bundle with fresh stdio FIFOs and a private cache dir.
func (p *shimProc) create(t *testing.T, id string, io *stdio, cacheDir string) (*taskapi.CreateTaskResponse, error) {
	t.Helper()
	return p.task.Create(p.ctx, &taskapi.CreateTaskRequest{
		ID: id, Bundle: p.bundle, Stdout: io.stdoutPath, Stderr: io.stderrPath,
		Options: runtimeOptions(t, fmt.Sprintf("CacheDir = %q\n", cacheDir)),
	})
}

func (p *shimProc) wait(t *testing.T, id string) uint32 {
	t.Helper()
	r, err := p.task.Wait(p.ctx, &taskapi.WaitRequest{ID: id})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return r.GetExitStatus()
}

func (p *shimProc) status(t *testing.T, id string) tasktypes.Status {
	t.Helper()
	st, err := p.task.State(p.ctx, &taskapi.StateRequest{ID: id})
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st.GetStatus()
}

// TestLifecycle drives one container through the whole task API and checks responses and events.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	const id = "lifecycle"
	bundle := newBundle(t, map[string][]byte{"app.wasm": wazeroguest.Tiny("hello from the tiny module\n", 7)}, func(s *specs.Spec) {
		s.Process.Args = []string{"/app.wasm#_start", "ignored"}
	})
	p := startShim(t, bundle, id)
	io := newStdio(t)
	cache := t.TempDir()
	cr, err := p.create(t, id, io, cache)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if int(cr.GetPid()) != p.pid {
		t.Errorf("Create pid %d, want the shim's pid %d (the guest runs in the shim)", cr.GetPid(), p.pid)
	}
	if st := p.status(t, id); st != tasktypes.Status_CREATED {
		t.Errorf("status after Create: %s", st)
	}
	if _, err := p.task.Create(p.ctx, &taskapi.CreateTaskRequest{ID: id, Bundle: bundle}); !errdefs.IsAlreadyExists(errgrpc.ToNative(err)) {
		t.Errorf("second Create: got %v, want AlreadyExists", err)
	}
	if _, err := p.task.Start(p.ctx, &taskapi.StartRequest{ID: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if code := p.wait(t, id); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	waitFor(t, 10*time.Second, "the guest's output", func() bool { return io.stdout.String() == "hello from the tiny module\n" })
	st, err := p.task.State(p.ctx, &taskapi.StateRequest{ID: id})
	if err != nil || st.GetStatus() != tasktypes.Status_STOPPED || st.GetExitStatus() != 7 || st.GetExitedAt() == nil ||
		st.GetBundle() != bundle || st.GetStdout() != io.stdoutPath {
		t.Errorf("State after exit: %v, %v", st, err)
	}
	pids, err := p.task.Pids(p.ctx, &taskapi.PidsRequest{ID: id})
	if err != nil || len(pids.GetProcesses()) != 1 || int(pids.GetProcesses()[0].GetPid()) != p.pid {
		t.Errorf("Pids: %v, %v", pids, err)
	}
	if _, err := p.task.Kill(p.ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("Kill after exit: got %v, want NotFound", err)
	}
	if _, err := p.task.Exec(p.ctx, &taskapi.ExecProcessRequest{ID: id, ExecID: "x"}); !errdefs.IsNotImplemented(errgrpc.ToNative(err)) {
		t.Errorf("Exec: got %v, want NotImplemented", err)
	}
	if _, err := p.task.Start(p.ctx, &taskapi.StartRequest{ID: id}); !errdefs.IsFailedPrecondition(errgrpc.ToNative(err)) {
		t.Errorf("second Start: got %v, want FailedPrecondition", err)
	}
	dr, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id})
	if err != nil || dr.GetExitStatus() != 7 || int(dr.GetPid()) != p.pid {
		t.Errorf("Delete: %v, %v", dr, err)
	}
	if _, err := p.task.State(p.ctx, &taskapi.StateRequest{ID: id}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("State after Delete: got %v, want NotFound", err)
	}

	want := []string{"wktest /tasks/create", "wktest /tasks/start", "wktest /tasks/exit", "wktest /tasks/delete"}
	waitFor(t, 10*time.Second, "four events", func() bool { return len(p.events.topics()) >= 4 })
	if got := p.events.topics(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if ev := p.events.event(t, "/tasks/exit").(*eventstypes.TaskExit); ev.GetContainerID() != id || ev.GetExitStatus() != 7 || int(ev.GetPid()) != p.pid {
		t.Errorf("exit event %v", ev)
	}

	if _, err := p.task.Shutdown(p.ctx, &taskapi.ShutdownRequest{ID: id}); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Errorf("Shutdown: %v", err)
	}
	waitFor(t, 30*time.Second, "the shim to exit after Shutdown", func() bool { return !alive(p.pid) })
	if _, err := os.Stat(strings.TrimPrefix(p.address, "unix://")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the shim's socket is still there after Shutdown: %v", err)
	}
}

// TestGuests runs the Go guest through the shim: argv, environment, rootfs, volumes, exit codes,
// errors that must fail Create (no module) or Start (the module does not compile or fit) clearly,
// and the memory limit.
func TestGuests(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	vol := t.TempDir()
	cache := sharedCache
	for _, tc := range []struct {
		name      string
		args      []string
		memory    int64
		createErr string // substring of the Create error, or "" when Create succeeds
		startErr  string // substring of the Start error, or "" when Start succeeds
		exit      uint32
		stdout    string
		stderr    string
	}{
		{name: "argv and env", args: []string{"/app.wasm", "env", "GREETING"}, stdout: "GREETING=hi\n"},
		{name: "argv[0] without #func", args: []string{"/app.wasm#_start", "hello", "x"}, stdout: `argv=["/app.wasm" "hello" "x"]`, stderr: "hello on stderr"},
		{name: "rootfs file", args: []string{"/app.wasm", "cat", "/etc/motd"}, stdout: "from the image"},
		{name: "volume", args: []string{"/app.wasm", "write", "/data/out.txt", "persisted"}, stdout: "wrote /data/out.txt"},
		{name: "exit code", args: []string{"/app.wasm", "exit", "42"}, exit: 42},
		{name: "memory limit exceeded", args: []string{"/app.wasm", "grow", "128"}, memory: 64 << 20, exit: 137, stderr: "memory limit exceeded"},
		{name: "memory limit below the module's minimum", args: []string{"/app.wasm"}, memory: 1 << 20, startErr: "memory limit exceeded: the module needs at least"},
		{name: "missing entry function", args: []string{"/app.wasm#serve"}, startErr: `exports no function "serve"`},
		{name: "not wasm", args: []string{"/etc/motd"}, createErr: "not a WebAssembly binary"},
		{name: "no module anywhere", args: []string{"/nope.wasm"}, createErr: "no WebAssembly module found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := strings.ReplaceAll(tc.name, " ", "-")
			bundle := newBundle(t, map[string][]byte{"app.wasm": guestWasm, "etc/motd": []byte("from the image")}, func(s *specs.Spec) {
				s.Process.Args = tc.args
				s.Process.Env = []string{"GREETING=hi"}
				s.Mounts = []specs.Mount{{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}}}
				if tc.memory != 0 {
					s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &tc.memory}}
				}
			})
			p := startShim(t, bundle, id)
			io := newStdio(t)
			_, err := p.create(t, id, io, cache)
			if tc.createErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.createErr) {
					t.Fatalf("Create: got %v, want an error containing %q", err, tc.createErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			_, err = p.task.Start(p.ctx, &taskapi.StartRequest{ID: id})
			if tc.startErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.startErr) {
					t.Fatalf("Start: got %v, want an error containing %q", err, tc.startErr)
				}
				if _, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
					t.Errorf("Delete after a failed Start: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if code := p.wait(t, id); code != tc.exit {
				t.Errorf("exit status %d, want %d; stderr %q", code, tc.exit, io.stderr.String())
			}
			waitFor(t, 10*time.Second, "the guest's output", func() bool {
				return strings.Contains(io.stdout.String(), tc.stdout) && strings.Contains(io.stderr.String(), tc.stderr)
			})
			if _, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
				t.Errorf("Delete: %v", err)
			}
			// A guest killed for its memory limit is reported as OOM-killed, before its exit.
			p.events.event(t, "/tasks/exit")
			topics := p.events.topics()
			oom := slices.Index(topics, "wktest /tasks/oom")
			if exit := slices.Index(topics, "wktest /tasks/exit"); (tc.exit == 137) != (oom >= 0) || oom > exit {
				t.Errorf("events %v: want /tasks/oom before /tasks/exit exactly when the guest was killed for its memory", topics)
			}
		})
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(vol, "out.txt")); err != nil || string(b) != "persisted" {
			t.Errorf("the guest's write did not reach the volume: %q, %v", b, err)
		}
	})
}

// TestKill stops guests blocked in sleep (poll_oneoff) or spinning, kills a task never started
// (also while its module still compiles), and ends a pod sandbox the way pause ends.
func TestKill(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	cache := sharedCache
	for _, tc := range []struct {
		name    string
		mode    string // guest mode; "" = never started
		sandbox bool
		cold    bool // an empty compilation cache: Kill and Delete come while the module compiles
		signal  syscall.Signal
		exit    uint32
	}{
		{name: "sleeping guest SIGKILL", mode: "sleep", signal: syscall.SIGKILL, exit: 137},
		{name: "sleeping guest SIGTERM", mode: "sleep", signal: syscall.SIGTERM, exit: 143},
		{name: "spinning guest SIGKILL", mode: "spin", signal: syscall.SIGKILL, exit: 137},
		{name: "never started", signal: syscall.SIGKILL, exit: 137},
		{name: "never started still compiling", cold: true, signal: syscall.SIGKILL, exit: 137},
		{name: "sandbox SIGTERM", sandbox: true, signal: syscall.SIGTERM, exit: 0},
		{name: "sandbox SIGKILL", sandbox: true, signal: syscall.SIGKILL, exit: 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := strings.ReplaceAll(tc.name, " ", "-")
			bundle := newBundle(t, map[string][]byte{"app.wasm": guestWasm}, func(s *specs.Spec) {
				s.Process.Args = []string{"/app.wasm", tc.mode}
				if tc.sandbox {
					s.Process.Args = []string{"/pause"} // not Wasm: the shim never looks at it
					s.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
				}
			})
			p := startShim(t, bundle, id)
			io := newStdio(t)
			cacheDir := cache
			if tc.cold {
				cacheDir = t.TempDir()
			}
			if _, err := p.create(t, id, io, cacheDir); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if tc.mode != "" || tc.sandbox {
				if _, err := p.task.Start(p.ctx, &taskapi.StartRequest{ID: id}); err != nil {
					t.Fatalf("Start: %v", err)
				}
				if tc.mode != "" {
					waitFor(t, 60*time.Second, "the guest to start", func() bool { return strings.Contains(io.stdout.String(), "ing") })
				}
				if st := p.status(t, id); st != tasktypes.Status_RUNNING {
					t.Fatalf("status %s, want RUNNING", st)
				}
				// Signals a guest cannot act on change nothing.
				if _, err := p.task.Kill(p.ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGWINCH)}); err != nil {
					t.Fatalf("Kill SIGWINCH: %v", err)
				}
				if st := p.status(t, id); st != tasktypes.Status_RUNNING {
					t.Fatalf("status after SIGWINCH %s, want RUNNING", st)
				}
			}
			sent := time.Now()
			if _, err := p.task.Kill(p.ctx, &taskapi.KillRequest{ID: id, Signal: uint32(tc.signal)}); err != nil {
				t.Fatalf("Kill: %v", err)
			}
			if code := p.wait(t, id); code != tc.exit {
				t.Errorf("exit status %d, want %d", code, tc.exit)
			}
			t.Logf("stopped %v after the signal", time.Since(sent))
			ev := p.events.event(t, "/tasks/exit").(*eventstypes.TaskExit)
			if ev.GetExitStatus() != tc.exit {
				t.Errorf("exit event status %d, want %d", ev.GetExitStatus(), tc.exit)
			}
			if _, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
				t.Errorf("Delete: %v", err)
			}
		})
	}
}

// TestCgroup checks that the shim joins the container's cgroup with its CPU limit (or none), in
// the cgroupfs driver's form and in the systemd driver's (below slices made as kubelet and systemd
// would make them: this host has no systemd), leaves and removes it at Delete, and that a container
// whose cgroup cannot be joined fails to be created, with an error naming the path.
func TestCgroup(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	quota, period := int64(50000), uint64(100000)
	unique := fmt.Sprintf("%d%d", os.Getpid(), time.Now().UnixNano())
	slice := "/wktest" + unique + ".slice/wktest" + unique + "-pod1.slice"
	for _, controller := range []string{"cpu", "cpuacct", "memory", "pids"} {
		makeCgroup(t, controller, slice)
	}
	// Every v1 cgroup directory has a file "tasks": no cgroup can be made there.
	unjoinable := "/wktest" + unique + "-unjoinable/tasks"
	t.Cleanup(func() {
		removeCgroupTree(t, "/wktest"+unique+".slice")
		removeCgroupTree(t, path.Dir(unjoinable))
	})
	for _, tc := range []struct {
		name        string
		cgroupsPath string
		path        string // the cgroupfs path the shim must join; "" when Create must fail
		resources   *specs.LinuxResources
		quota       string // cpu.cfs_quota_us
		createErr   string
	}{
		{name: "cpu quota", cgroupsPath: "/wazeroshim-cgroup-" + unique + "-a", path: "/wazeroshim-cgroup-" + unique + "-a",
			resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}, quota: "50000"},
		{name: "no resources", cgroupsPath: "/wazeroshim-cgroup-" + unique + "-b", path: "/wazeroshim-cgroup-" + unique + "-b", quota: "-1"},
		{name: "systemd driver", cgroupsPath: "wktest" + unique + "-pod1.slice:cri-containerd:c", path: slice + "/cri-containerd-c.scope",
			resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}}, quota: "50000"},
		{name: "cannot join", cgroupsPath: unjoinable, createErr: "join the container's cgroup " + unjoinable},
		{name: "bad systemd path", cgroupsPath: "wktest" + unique + "--x.slice:cri-containerd:e",
			createErr: `invalid slice name "wktest` + unique + `--x.slice"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id := strings.ReplaceAll(tc.name, " ", "-")
			bundle := newBundle(t, map[string][]byte{"app.wasm": guestWasm}, func(s *specs.Spec) {
				s.Process.Args = []string{"/app.wasm", "sleep"}
				s.Linux.CgroupsPath = tc.cgroupsPath
				s.Linux.Resources = tc.resources
			})
			p := startShim(t, bundle, id)
			io := newStdio(t)
			_, err := p.create(t, id, io, sharedCache)
			if tc.createErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.createErr) {
					t.Fatalf("Create: got %v, want an error containing %q", err, tc.createErr)
				}
				if got := cgroupOf(t, p.pid, "cpu"); strings.Contains(got, unique) {
					t.Errorf("the shim is in cpu cgroup %s after a failed Create", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			t.Cleanup(func() {
				if cg, err := cgroup1.Load(cgroup1.StaticPath(tc.path)); err == nil {
					_ = cg.Delete()
				}
			})
			for _, controller := range []string{"cpu", "memory", "pids"} {
				if got := cgroupOf(t, p.pid, controller); got != tc.path {
					t.Fatalf("the shim's %s cgroup is %q, want %q", controller, got, tc.path)
				}
			}
			cpuDir := cgroupDir(t, "cpu", tc.path)
			if b, err := os.ReadFile(filepath.Join(cpuDir, "cpu.cfs_quota_us")); err != nil || strings.TrimSpace(string(b)) != tc.quota {
				t.Errorf("cpu.cfs_quota_us = %q, %v; want %s", b, err, tc.quota)
			}
			if _, err := p.task.Start(p.ctx, &taskapi.StartRequest{ID: id}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.task.Kill(p.ctx, &taskapi.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)}); err != nil {
				t.Fatal(err)
			}
			p.wait(t, id)
			if _, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
				t.Fatal(err)
			}
			if got := cgroupOf(t, p.pid, "cpu"); got == tc.path {
				t.Errorf("the shim is still in %s after Delete", tc.path)
			}
			if _, err := os.Stat(cpuDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s still exists after Delete: %v", cpuDir, err)
			}
		})
	}
}

// makeCgroup creates the cgroup at path (and its parents) in the v1 hierarchy that has controller.
func makeCgroup(t *testing.T, controller, path string) string {
	t.Helper()
	dir := cgroupDir(t, controller, path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cgroupOf returns pid's cgroup in the v1 hierarchy that has controller.
func cgroupOf(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), controller) {
			return parts[2]
		}
	}
	t.Skipf("no cgroup v1 %s controller for pid %d (cgroup v2 host?)", controller, pid)
	return ""
}

// cgroupDir is path in the v1 hierarchy that has controller, from /proc/self/mountinfo.
func cgroupDir(t *testing.T, controller, path string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 3 && g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), controller) {
			return filepath.Join(f[4], path)
		}
	}
	t.Skipf("no cgroup v1 %s hierarchy mounted", controller)
	return ""
}

// TestCompilationCache proves that a second shim loads the same module from the cache on disk.
func TestCompilationCache(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	cache := t.TempDir()
	for i, want := range []string{"cache_hit=false", "cache_hit=true"} {
		id := fmt.Sprintf("cache-%d", i)
		bundle := newBundle(t, map[string][]byte{"app.wasm": guestWasm}, nil)
		p := startShim(t, bundle, id)
		if _, err := p.create(t, id, newStdio(t), cache); err != nil {
			t.Fatalf("Create: %v", err)
		}
		// The module compiles after Create returns; a cold compile under load can take a while.
		waitFor(t, 2*time.Minute, want+" in the shim log", func() bool { return strings.Contains(p.log.String(), want) })
		if _, err := p.task.Delete(p.ctx, &taskapi.DeleteRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(cache)
	if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), "wazero-v1.12.0-") {
		t.Errorf("cache dir holds %v (%v), want one wazero-v1.12.0-<arch>-<os> directory", entries, err)
	}
}

// TestBadOptions: runtime options with an unknown key fail Create and name the known ones.
func TestBadOptions(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	bundle := newBundle(t, map[string][]byte{"app.wasm": wazeroguest.Tiny("x", 0)}, nil)
	p := startShim(t, bundle, "opts")
	_, err := p.task.Create(p.ctx, &taskapi.CreateTaskRequest{ID: "opts", Bundle: bundle, Options: runtimeOptions(t, "CachDir = \"/tmp/x\"\n")})
	if err == nil || !strings.Contains(err.Error(), "known keys: CacheDir") {
		t.Fatalf("Create with a misspelt option: got %v", err)
	}
}

// TestOneShotActions runs -info and `delete` as containerd does.
func TestOneShotActions(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	out, err := exec.Command(shimBinary, "-info").Output()
	if err != nil {
		t.Fatalf("-info: %v", err)
	}
	var info types.RuntimeInfo
	if err := proto.Unmarshal(out, &info); err != nil || info.GetName() != wazeroshim.RuntimeType || !strings.Contains(info.GetVersion().GetVersion(), "wazero v1.12.0") {
		t.Errorf("-info: %v, %v", &info, err)
	}

	bundle := newBundle(t, nil, nil)
	cmd := exec.Command(shimBinary, "-namespace", testNamespace, "-id", "dead", "-bundle", bundle, "-address", "/nonexistent", "delete")
	cmd.Dir = bundle
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, stderr.String())
	}
	var dr taskapi.DeleteResponse
	if err := proto.Unmarshal(out, &dr); err != nil || dr.GetExitStatus() != 137 || dr.GetExitedAt() == nil {
		t.Errorf("delete: %v, %v", &dr, err)
	}
}
