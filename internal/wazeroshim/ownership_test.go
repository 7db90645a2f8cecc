package wazeroshim_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
)

const nativeImage = "wasmkube.test/native-guest:1"

// TestOwnership runs the same program as a runc container (a static linux binary) and as a Wasm
// guest, with the same securityContext, on two volumes each: a plain one (an emptyDir: 0777) and
// one prepared for an fsGroup the way the kubelet prepares it (group fsGroup, setgid). Each creates
// a file, a directory and a file in it; the owners, groups and modes the shim produces must be the
// ones runc produces.
func TestOwnership(t *testing.T) {
	t.Parallel()
	cgroupRoot := fmt.Sprintf("/wazeroshim-owner-%d", os.Getpid())
	t.Cleanup(func() { removeCgroupTree(t, cgroupRoot) }) // after the daemon's cleanup has removed the pods
	d, _ := startContainerd(t)
	d.ImportImage(ordinaryImageTarball(t), guestImage)
	native, err := wazeroguest.BuildNativeTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	nativeTar := filepath.Join(t.TempDir(), "native.tar")
	if err := containerdtest.ImageTarball(native, "guest", nativeImage, nativeTar); err != nil {
		t.Fatal(err)
	}
	d.ImportImage(nativeTar, nativeImage)

	const fsGroup = 2000
	for _, sc := range []struct {
		name string
		ctx  *runtimeapi.LinuxContainerSecurityContext
		// what runc gives the file in the plain and the fsGroup volume (checked so that a test
		// whose runc side went wrong cannot pass)
		plain, grouped string
	}{
		{"runAsUser runAsGroup fsGroup", &runtimeapi.LinuxContainerSecurityContext{
			RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 3000},
			SupplementalGroups: []int64{fsGroup}}, "1000:3000 -rw-r--r--", "1000:2000 -rw-r--r--"},
		{"root fsGroup", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{fsGroup}},
			"0:0 -rw-r--r--", "0:2000 -rw-r--r--"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			results := map[string]map[string]string{}
			for _, rt := range []struct{ handler, image string }{{"", nativeImage}, {handler, guestImage}} {
				plain, grouped := t.TempDir(), t.TempDir()
				if err := os.Chmod(plain, 0o777); err != nil {
					t.Fatal(err)
				}
				// The kubelet's volume ownership for an fsGroup: group fsGroup, group-writable, setgid.
				if err := os.Chown(grouped, 0, fsGroup); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(grouped, 0o2775); err != nil {
					t.Fatal(err)
				}
				p := runPodSandbox(t, d, rt.handler, "owner", func(uid string) string { return cgroupRoot + "/pod" + uid })
				id := p.start(t, "create", rt.image, func(c *runtimeapi.ContainerConfig) {
					c.Linux.SecurityContext.RunAsUser, c.Linux.SecurityContext.RunAsGroup = sc.ctx.RunAsUser, sc.ctx.RunAsGroup
					c.Linux.SecurityContext.SupplementalGroups = sc.ctx.SupplementalGroups
					c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/plain", HostPath: plain}, {ContainerPath: "/grouped", HostPath: grouped}}
				}, "create", "/plain", "/grouped")
				if st := p.waitExited(t, id); st.GetExitCode() != 0 {
					t.Fatalf("%q handler: status %v, log:\n%s", rt.handler, st, p.log(t, "create"))
				}
				results[rt.handler] = owners(t, map[string]string{"plain": plain, "grouped": grouped})
			}
			runc, wasm := results[""], results[handler]
			if runc["plain/file"] != sc.plain || runc["grouped/file"] != sc.grouped {
				t.Fatalf("runc created plain/file %s and grouped/file %s, want %s and %s", runc["plain/file"], runc["grouped/file"], sc.plain, sc.grouped)
			}
			for path, want := range runc {
				if wasm[path] != want {
					t.Errorf("%s: runc %s, wazero %s", path, want, wasm[path])
				}
			}
			t.Logf("runc and wazero: %v", runc)
		})
	}
}

// owners describes the owner, group and mode of every entry the program created under dirs.
func owners(t *testing.T, dirs map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, dir := range dirs {
		for _, p := range []string{"file", "dir", "dir/file"} {
			st, err := os.Lstat(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			sys := st.Sys().(*syscall.Stat_t)
			out[name+"/"+p] = fmt.Sprintf("%d:%d %v", sys.Uid, sys.Gid, st.Mode())
		}
	}
	return out
}
