package wazeroshim_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/internal/wazeroshim"
)

// handler is the CRI runtime handler (RuntimeClass handler) the tests register for the shim.
const handler = "wazero"

// startContainerd starts containerd 2.4.2 on private paths with the shim registered as the CRI
// runtime `wazero` (runtime_path = the built binary) and on the daemon's PATH (for ctr's --runtime),
// both with the package's shared compilation cache. It returns the daemon and that cache directory.
func startContainerd(t *testing.T) (*containerdtest.Daemon, string) {
	t.Helper()
	p := containerdtest.NewPaths(t, "")
	cache := sharedCache
	cfg := append(containerdtest.Config(4, p), fmt.Sprintf(`
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s]
  runtime_type = %q
  runtime_path = %q
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s.options]
    CacheDir = %q
`, handler, wazeroshim.RuntimeType, shimBinary, handler, cache)...)
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Paths: &p, Config: cfg, ExtraPath: []string{shimBinDir}})
	d.WaitReady(handler, true)
	return d, cache
}

// ctrRun runs `ctr run --rm` with the shim's runtime type and returns its output and exit code.
func ctrRun(t *testing.T, d *containerdtest.Daemon, optsFile, image, id string, args ...string) (string, int) {
	t.Helper()
	out, err := d.Ctr(append([]string{"run", "--rm", "--runtime", wazeroshim.RuntimeType, "--runtime-config-path", optsFile, image, id}, args...)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	}
	t.Fatalf("ctr run: %v", err)
	return "", 0
}

// TestCtrRun runs both image styles with `ctr run` on a real containerd 2.4.2.
func TestCtrRun(t *testing.T) {
	t.Parallel()
	d, cache := startContainerd(t)
	d.ImportImage(ordinaryImageTarball(t), guestImage)
	d.ImportImage(artifactTarball(t, wazeroguest.Tiny("hello from a Wasm OCI artifact\n", 0)), artifactImage, "--platform", "wasip1/wasm")
	opts := filepath.Join(t.TempDir(), "wazero.toml")
	if err := os.WriteFile(opts, fmt.Appendf(nil, "CacheDir = %q\n", cache), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		image string
		args  []string
		exit  int
		out   string
	}{
		{"ordinary image", guestImage, []string{"/app.wasm", "hello", "from ctr"}, 0, `argv=["/app.wasm" "hello" "from ctr"]`},
		{"ordinary image stderr", guestImage, []string{"/app.wasm", "hello"}, 0, "hello on stderr"},
		{"ordinary image exit code", guestImage, []string{"/app.wasm", "exit", "3"}, 3, "exiting with 3"},
		{"path#func", guestImage, []string{"/app.wasm#_start", "env", "PATH"}, 0, "PATH=/usr/local/sbin"},
		{"wasm artifact", artifactImage, nil, 0, "hello from a Wasm OCI artifact"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := ctrRun(t, d, opts, tc.image, "ctr-"+strings.NewReplacer(" ", "-", "#", "-").Replace(tc.name), tc.args...)
			if code != tc.exit || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, tc.exit, out, tc.out)
			}
		})
	}
	t.Run("not wasm", func(t *testing.T) {
		out, code := ctrRun(t, d, opts, guestImage, "ctr-not-wasm", "/etc/passwd")
		if code == 0 || !strings.Contains(out, "no WebAssembly module found") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
	if entries, err := os.ReadDir(cache); err != nil || len(entries) != 1 {
		t.Errorf("compilation cache %s: %v, %v", cache, entries, err)
	}
}

// criPod is a pod sandbox started through CRI with the shim's handler, as the kubelet starts one.
type criPod struct {
	rt        runtimeapi.RuntimeServiceClient
	id        string
	config    *runtimeapi.PodSandboxConfig
	logDir    string
	cgroupDir string // the pod's cgroup parent
}

// runPodSandbox starts a sandbox with the runtime handler (the wazero shim's, or "" for runc) whose
// cgroup parent is cgroupParent(uid) (the pod's uid is digits only, so that it fits in a systemd
// slice name).
func runPodSandbox(t *testing.T, d *containerdtest.Daemon, handler, name string, cgroupParent func(uid string) string) *criPod {
	t.Helper()
	uid := fmt.Sprint(time.Now().UnixNano())
	p := &criPod{
		rt:        d.Client().Runtime(),
		logDir:    filepath.Join(t.TempDir(), "pods", "default_"+name+"_"+uid),
		cgroupDir: cgroupParent(uid),
	}
	p.config = &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "default", Attempt: 0},
		Hostname:     name,
		LogDirectory: p.logDir,
		DnsConfig:    &runtimeapi.DNSConfig{},
		Labels:       map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": uid},
		Annotations:  map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: p.cgroupDir,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2},
		},
	}
	ctx := context.Background()
	resp, err := p.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: p.config, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox with handler %q: %v\n%s", handler, err, d.Logs())
	}
	p.id = resp.GetPodSandboxId()
	return p
}

// container creates and starts one container running the Go guest with args, as the kubelet does
// (command = image entrypoint, args, a log path under the pod's log directory, resources).
func (p *criPod) container(t *testing.T, name string, memory int64, args ...string) string {
	t.Helper()
	return p.start(t, name, guestImage, func(c *runtimeapi.ContainerConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{
			CpuShares: 102, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: memory, OomScoreAdj: 1000}
	}, args...)
}

// start creates and starts a container of image with args; edit (if not nil) completes its config
// (resources, mounts, security context).
func (p *criPod) start(t *testing.T, name, image string, edit func(*runtimeapi.ContainerConfig), args ...string) string {
	t.Helper()
	ctx := context.Background()
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: name},
		Image:      &runtimeapi.ImageSpec{Image: image},
		Args:       args,
		Envs:       []*runtimeapi.KeyValue{{Key: "POD_NAME", Value: []byte(p.config.GetMetadata().GetName())}},
		LogPath:    filepath.Join(name, "0.log"),
		Labels:     map[string]string{"io.kubernetes.container.name": name},
		WorkingDir: "/",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	if edit != nil {
		edit(cfg)
	}
	c, err := p.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := p.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.GetContainerId()}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return c.GetContainerId()
}

// waitExited waits for the container to exit and returns its status.
func (p *criPod) waitExited(t *testing.T, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	var st *runtimeapi.ContainerStatus
	waitFor(t, 60*time.Second, "container "+id+" to exit", func() bool {
		resp, err := p.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		st = resp.GetStatus()
		return err == nil && st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED
	})
	return st
}

// log returns the container's CRI log file (what `kubectl logs` reads through the kubelet).
func (p *criPod) log(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.logDir, name, "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCRIPod runs a pod through CRI with the wazero handler: the sandbox is held by the shim, Wasm
// containers log to the pod's log directory, report exit codes and stop on StopContainer; the shim
// runs in the sandbox's cgroup (TestCRIAccounting checks what that accounts).
func TestCRIPod(t *testing.T) {
	t.Parallel()
	testRoot := fmt.Sprintf("/wazeroshim-pods-%d-%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { removeCgroupTree(t, testRoot) }) // after the daemon's cleanup has removed the pods
	d, _ := startContainerd(t)
	d.ImportImage(ordinaryImageTarball(t), guestImage)
	p := runPodSandbox(t, d, handler, "wasm-pod", func(uid string) string { return testRoot + "/pod" + uid })

	sb, err := p.rt.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil || sb.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || sb.GetStatus().GetRuntimeHandler() != handler {
		t.Fatalf("sandbox status %v, %v", sb.GetStatus(), err)
	}

	t.Run("logs", func(t *testing.T) {
		id := p.container(t, "hello", 0, "hello", "kubectl", "logs")
		if st := p.waitExited(t, id); st.GetExitCode() != 0 || st.GetReason() != "Completed" {
			t.Fatalf("status %v", st)
		}
		log := p.log(t, "hello")
		for _, want := range []string{` stdout F hello from wasm: argv=["/app.wasm" "hello" "kubectl" "logs"]`, " stderr F hello on stderr"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
	})
	t.Run("env", func(t *testing.T) {
		id := p.container(t, "env", 0, "env", "POD_NAME")
		p.waitExited(t, id)
		if log := p.log(t, "env"); !strings.Contains(log, "stdout F POD_NAME=wasm-pod") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("exit code", func(t *testing.T) {
		id := p.container(t, "exit", 0, "exit", "3")
		if st := p.waitExited(t, id); st.GetExitCode() != 3 || st.GetReason() != "Error" {
			t.Fatalf("status %v", st)
		}
	})
	for _, tc := range []struct {
		name    string
		timeout int64
		exit    int32
	}{{"stop", 10, 143}, {"kill", 0, 137}} {
		t.Run(tc.name, func(t *testing.T) {
			id := p.container(t, tc.name, 0, "sleep")
			waitFor(t, 60*time.Second, "the guest to sleep", func() bool {
				b, _ := os.ReadFile(filepath.Join(p.logDir, tc.name, "0.log"))
				return strings.Contains(string(b), "sleeping")
			})
			pid := shimPidOf(t, p.id) // the pod's containers run in the sandbox's shim
			if got, want := cgroupOf(t, pid, "cpu"), p.cgroupDir+"/"+p.id; got != want {
				t.Errorf("shim %d is in cpu cgroup %q, want the pod sandbox's %q", pid, got, want)
			}
			start := time.Now()
			if _, err := p.rt.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: tc.timeout}); err != nil {
				t.Fatalf("StopContainer: %v", err)
			}
			t.Logf("StopContainer took %v", time.Since(start))
			if st := p.waitExited(t, id); st.GetExitCode() != tc.exit {
				t.Fatalf("exit code %d, want %d", st.GetExitCode(), tc.exit)
			}
			if _, err := p.rt.RemoveContainer(context.Background(), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Fatalf("RemoveContainer: %v", err)
			}
		})
	}
	ctx := context.Background()
	if _, err := p.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := p.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// shimPidOf finds the shim serving a container or sandbox (its command line says -id <id>).
func shimPidOf(t *testing.T, id string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "containerd-shim-wazero-v1" && strings.Contains(string(b), "\x00-id\x00"+id+"\x00") {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid)
			return pid
		}
	}
	t.Fatalf("no shim process for container %s", id)
	return 0
}

// removeCgroupTree removes the test's cgroup parent in every v1 hierarchy, leaves first.
func removeCgroupTree(t *testing.T, root string) {
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, m := range mounts {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(m, root), func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("remove cgroup %s: %v", dirs[i], err)
			}
		}
	}
}
