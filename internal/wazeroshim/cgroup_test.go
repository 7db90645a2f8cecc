package wazeroshim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCgroupfsPath expands systemd cgroupsPaths the way runc's systemd driver does and keeps
// cgroupfs ones.
func TestCgroupfsPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "/kubepods/besteffort/pod1234/abc", want: "/kubepods/besteffort/pod1234/abc"},
		{in: "kubepods-besteffort-pod1234.slice:cri-containerd:abc",
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-abc.scope"},
		{in: "kubepods-pod12_34.slice:cri-containerd:abc", want: "/kubepods.slice/kubepods-pod12_34.slice/cri-containerd-abc.scope"},
		{in: "kubepods.slice:cri-containerd:abc", want: "/kubepods.slice/cri-containerd-abc.scope"},
		{in: ":cri-containerd:abc", want: "/system.slice/cri-containerd-abc.scope"},
		{in: "-.slice:cri-containerd:abc", want: "/cri-containerd-abc.scope"},
		{in: "machine.slice:libpod:def.slice", want: "/machine.slice/def.slice"},
		{in: "system.slice::abc", want: "/system.slice/-abc.scope"},
		{in: "kubepods--x.slice:p:n", err: `invalid slice name "kubepods--x.slice"`},
		{in: "-kubepods.slice:p:n", err: "invalid slice name"},
		{in: "kubepods:p:n", err: `invalid slice name "kubepods"`},
		{in: ".slice:p:n", err: "invalid slice name"},
		{in: "a/b.slice:p:n", err: "invalid slice name"},
		{in: "a.slice:p:", err: "invalid unit name"},
		{in: "a.slice:p:n/m", err: "invalid unit name"},
		{in: "a.slice:n", err: "the systemd form is slice:prefix:name"},
		{in: "a.slice:p:n:m", err: "the systemd form is slice:prefix:name"},
	} {
		got, err := cgroupfsPath(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("%q: got %q, %v; want an error naming it, with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestJoinCgroup2 joins a systemd-driver cgroupsPath on a fake cgroup v2 tree (this host mounts
// cgroup v1; v2 cannot hold controllers here): the slices kubelet and systemd would have made
// exist, the shim creates its scope below the pod's slice, enables cpu, memory and pids for it,
// writes the container's CPU and pids limits and moves itself in; leaving moves it back and removes
// the scope.
func TestJoinCgroup2(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice"
	for _, dir := range []string{"", "/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice", pod} {
		for file, content := range map[string]string{
			"cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc", "cgroup.subtree_control": "", "cgroup.procs": "",
		} {
			writeFakeFile(t, filepath.Join(root, dir, file), content)
		}
	}
	// The shim's current cgroup, as /proc/self/cgroup names it for the unified hierarchy.
	self, err := selfCgroup2()
	if err != nil {
		t.Fatal(err)
	}
	writeFakeFile(t, filepath.Join(root, self, "cgroup.procs"), "")

	quota, period, pids := int64(20000), uint64(100000), int64(64)
	h := cgroupHost{unified: true, unifiedMount: root}
	cg, err := h.joinCgroup("kubepods-burstable-pod1234.slice:cri-containerd:abc", &specs.LinuxResources{
		CPU:  &specs.LinuxCPU{Quota: &quota, Period: &period},
		Pids: &specs.LinuxPids{Limit: &pids},
	})
	if err != nil {
		t.Fatal(err)
	}
	scope := filepath.Join(root, pod, "cri-containerd-abc.scope")
	pid := fmt.Sprint(os.Getpid())
	for file, want := range map[string]string{
		filepath.Join(scope, "cgroup.procs"):               pid,
		filepath.Join(scope, "cpu.max"):                    "20000 100000",
		filepath.Join(scope, "pids.max"):                   "64",
		filepath.Join(root, pod, "cgroup.subtree_control"): "+cpu +memory +pids",
	} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", file, b, err, want)
		}
	}
	if cg.path != pod+"/cri-containerd-abc.scope" {
		t.Errorf("cgroup path %s", cg.path)
	}
	// The kernel empties cgroup.procs when the shim moves back; the fake tree needs a hand.
	must(t, os.WriteFile(filepath.Join(scope, "cgroup.procs"), nil, 0o644))
	if err := cg.leave(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, self, "cgroup.procs")); err != nil || string(b) != pid {
		t.Errorf("the shim did not move back to %s: %q, %v", self, b, err)
	}
	if _, err := os.Stat(scope); !os.IsNotExist(err) {
		t.Errorf("the scope is still there after leaving: %v", err)
	}
}

// TestJoinCgroupFails: a cgroupsPath that cannot be joined fails with an error naming it.
func TestJoinCgroupFails(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// A file where a slice directory should be: the scope cannot be created.
	writeFakeFile(t, filepath.Join(root, "kubepods.slice"), "")
	h := cgroupHost{unified: true, unifiedMount: root}
	_, err := h.joinCgroup("kubepods-pod1.slice:cri-containerd:abc", nil)
	if err == nil || !strings.Contains(err.Error(), "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope") ||
		!strings.Contains(err.Error(), "kubepods-pod1.slice:cri-containerd:abc") {
		t.Fatalf("got %v, want an error naming the path", err)
	}
	if _, err := h.joinCgroup("bad--slice.slice:p:n", nil); err == nil || !strings.Contains(err.Error(), "bad--slice.slice") {
		t.Fatalf("got %v, want an error naming the slice", err)
	}
}

// selfCgroup2 is this process's cgroup in the unified hierarchy ("0::/path" in /proc/self/cgroup).
func selfCgroup2() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no unified hierarchy entry in /proc/self/cgroup:\n%s", b)
}

func writeFakeFile(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
