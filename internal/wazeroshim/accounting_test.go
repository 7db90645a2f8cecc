package wazeroshim_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

const probeImage = "wasmkube.test/wasm-probe:1"

// Limits of the test pods' cgroups, set the way the kubelet sets a pod's: memory for the containers
// plus an overhead for the shim itself (its heap and the compiled code), as a RuntimeClass overhead
// adds, and, while the CPU test runs, 0.2 CPU (set then only, so that compiling and touching memory
// in the other tests run at full speed).
const (
	podCPUQuota  = 20000 // µs per 100 ms period
	podMemory    = 384 << 20
	holdMiB      = 96
	holdLimit    = 128 << 20
	oomLimit     = 64 << 20
	burnSeconds  = 2
	cpuTolerance = 1.5 // measured CPU may exceed the quota by this factor (period boundaries, the shim's own work)
)

// TestCRIAccounting runs pods through CRI on containerd 2.4.2 with the cgroupfs and the systemd
// driver's cgroup paths (below slices the test makes as kubelet and systemd would: this host has
// no systemd) and checks that the shim accounts everything to the pod: it runs in the pod
// sandbox's cgroup, the pod's memory usage covers a guest's linear memory and compiled code, a
// guest that exceeds its container's memory limit ends OOMKilled with exit code 137, and the pod's
// CPU limit throttles a CPU-bound guest (its module is compiled by then: the OOM test runs it).
func TestCRIAccounting(t *testing.T) {
	t.Parallel()
	d, cache := startContainerd(t)
	d.ImportImage(ordinaryImageTarball(t), guestImage)
	probeTar := filepath.Join(t.TempDir(), "probe.tar")
	probePath := filepath.Join(t.TempDir(), "probe.wasm")
	if err := os.WriteFile(probePath, probeWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := containerdtest.ImageTarball(probePath, "probe.wasm", probeImage, probeTar); err != nil {
		t.Fatal(err)
	}
	d.ImportImage(probeTar, probeImage)

	unique := fmt.Sprint(os.Getpid())
	for _, driver := range []struct {
		name   string
		root   string                              // removed after the test
		parent func(uid string) string             // the pod's cgroup, as the kubelet names it
		shim   func(parent, sandbox string) string // the cgroup the shim must join
	}{
		{"cgroupfs", "/wazeroshim-kubepods-" + unique,
			func(uid string) string { return "/wazeroshim-kubepods-" + unique + "/pod" + uid },
			func(parent, sandbox string) string { return parent + "/" + sandbox }},
		{"systemd", "/wktest" + unique + ".slice",
			func(uid string) string {
				return "/wktest" + unique + ".slice/wktest" + unique + "-pod" + uid + ".slice"
			},
			func(parent, sandbox string) string { return parent + "/cri-containerd-" + sandbox + ".scope" }},
	} {
		t.Run(driver.name, func(t *testing.T) {
			t.Parallel()
			t.Cleanup(func() { removeCgroupTree(t, driver.root) }) // the pod is removed by then
			p := runPodSandbox(t, d, handler, "acct-"+driver.name, func(uid string) string {
				parent := driver.parent(uid)
				makePodCgroup(t, parent)
				return parent
			})
			want := driver.shim(p.cgroupDir, p.id)
			pid := shimPidOf(t, p.id)
			for _, controller := range []string{"cpu", "cpuacct", "memory", "pids"} {
				if got := cgroupOf(t, pid, controller); got != want {
					t.Fatalf("shim %d is in %s cgroup %q, want the pod sandbox's %q", pid, controller, got, want)
				}
			}

			t.Run("memory is charged to the pod", func(t *testing.T) {
				id := p.start(t, "hold", probeImage, withResources(&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: holdLimit}),
					"alloc", strconv.Itoa(holdMiB), "sleep", "600")
				waitFor(t, 2*time.Minute, "the guest to hold its memory", func() bool {
					b, _ := os.ReadFile(filepath.Join(p.logDir, "hold", "0.log"))
					return strings.Contains(string(b), fmt.Sprintf("holding %d MiB", holdMiB))
				})
				usage := readCgroupInt(t, "memory", p.cgroupDir, "memory.usage_in_bytes")
				code := largestFile(t, cache) // the guest's compiled code, as wazero caches it
				rss := vmRSS(t, pid)
				t.Logf("pod memory usage %d MiB; guest holds %d MiB; compiled code %d MiB; shim RSS %d MiB",
					usage>>20, holdMiB, code>>20, rss>>20)
				if usage < holdMiB<<20+code {
					t.Errorf("the pod's cgroup is charged %d MiB, less than the guest's %d MiB of memory plus its %d MiB of compiled code",
						usage>>20, holdMiB, code>>20)
				}
				stop(t, p, id)
			})

			t.Run("over its memory limit a guest is OOMKilled", func(t *testing.T) {
				id := p.start(t, "oom", guestImage, withResources(&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: oomLimit}), "grow", "256")
				st := p.waitExited(t, id)
				waitFor(t, 30*time.Second, "the OOMKilled reason", func() bool {
					resp, err := p.rt.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
					st = resp.GetStatus()
					return err == nil && st.GetReason() == "OOMKilled"
				})
				log := p.log(t, "oom")
				if st.GetExitCode() != 137 || !strings.Contains(log, "memory limit exceeded") || strings.Contains(log, "allocated all") {
					t.Fatalf("status %v, log:\n%s", st, log)
				}
			})

			t.Run("the pod's CPU limit applies", func(t *testing.T) {
				setCgroup(t, "cpu", p.cgroupDir, "cpu.cfs_quota_us", strconv.Itoa(podCPUQuota))
				defer setCgroup(t, "cpu", p.cgroupDir, "cpu.cfs_quota_us", "-1")
				usage0 := readCgroupInt(t, "cpuacct", p.cgroupDir, "cpuacct.usage")
				throttled0 := cpuStat(t, p.cgroupDir, "nr_throttled")
				start := time.Now()
				id := p.start(t, "burn", guestImage, withResources(&runtimeapi.LinuxContainerResources{CpuQuota: podCPUQuota, CpuPeriod: 100000}),
					"burn", strconv.Itoa(burnSeconds))
				if st := p.waitExited(t, id); st.GetExitCode() != 0 {
					t.Fatalf("status %v", st)
				}
				wall := time.Since(start)
				used := time.Duration(readCgroupInt(t, "cpuacct", p.cgroupDir, "cpuacct.usage") - usage0)
				throttled := cpuStat(t, p.cgroupDir, "nr_throttled") - throttled0
				share := used.Seconds() / wall.Seconds()
				limit := float64(podCPUQuota) / 100000
				t.Logf("the pod used %v of CPU in %v (%.2f CPU, limit %.2f), throttled %d times", used, wall, share, limit, throttled)
				if share > limit*cpuTolerance || throttled == 0 {
					t.Errorf("the pod used %.2f CPU (throttled %d times), its limit is %.2f", share, throttled, limit)
				}
			})

			ctx := context.Background()
			if _, err := p.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
				t.Fatalf("StopPodSandbox: %v", err)
			}
			if _, err := p.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
		})
	}
}

func withResources(res *runtimeapi.LinuxContainerResources) func(*runtimeapi.ContainerConfig) {
	return func(c *runtimeapi.ContainerConfig) { c.Linux.Resources = res }
}

// makePodCgroup makes a pod's cgroup as the kubelet does before it asks for the sandbox: in the
// cpu, cpuacct and memory hierarchies, with the pod's memory limit.
func makePodCgroup(t *testing.T, parent string) {
	t.Helper()
	for _, controller := range []string{"cpu", "cpuacct", "memory"} {
		makeCgroup(t, controller, parent)
	}
	setCgroup(t, "memory", parent, "memory.limit_in_bytes", strconv.Itoa(podMemory))
}

func setCgroup(t *testing.T, controller, path, file, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgroupDir(t, controller, path), file), []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCgroupInt(t *testing.T, controller, path, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupDir(t, controller, path), file))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// cpuStat returns a field of the pod's cpu.stat.
func cpuStat(t *testing.T, path, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupDir(t, "cpu", path), "cpu.stat"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == field {
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in cpu.stat:\n%s", field, b)
	return 0
}

// largestFile returns the size of the largest file under dir.
func largestFile(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		info, err := e.Info()
		if err == nil {
			size = max(size, info.Size())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return size
}

func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// stop stops and removes a container.
func stop(t *testing.T, p *criPod, id string) {
	t.Helper()
	if _, err := p.rt.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	if _, err := p.rt.RemoveContainer(context.Background(), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
}
