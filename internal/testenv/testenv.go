// Package testenv locates the external binaries that wasmkube's integration tests drive (containerd,
// runc, kube-apiserver, etcd, ...). `make test` builds them with hack/tools.sh and exports their paths;
// a test that needs one calls a helper here, which skips under -short and fails otherwise when the
// binary is missing, so a plain `go test ./...` never passes by silently running nothing.
package testenv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Environment variables written by `hack/tools.sh env`.
const (
	EnvContainerd1    = "WASMKUBE_CONTAINERD1"     // Debian's containerd 1.6 binary
	EnvContainerd2Dir = "WASMKUBE_CONTAINERD2_DIR" // containerd 2.x, ctr, containerd-shim-runc-v2
	EnvRunc           = "WASMKUBE_RUNC"            // runc binary
	EnvCNIDir         = "WASMKUBE_CNI_DIR"         // CNI plugins (bridge, host-local, loopback)
	EnvKubeDir        = "WASMKUBE_KUBE_DIR"        // kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, kubectl
	EnvEtcd           = "WASMKUBE_ETCD"            // etcd binary
	EnvEnvtestAssets  = "KUBEBUILDER_ASSETS"       // directory with kube-apiserver and etcd for envtest
	EnvCrictl         = "WASMKUBE_CRICTL"          // crictl binary
	EnvKwokDir        = "WASMKUBE_KWOK_DIR"        // kwok, kwokctl under bin/, stage files under stage/
	EnvHelm           = "WASMKUBE_HELM"            // helm binary
	EnvCacheDir       = "WASMKUBE_CACHE_DIR"       // the tool cache root
	EnvQemuAarch64    = "WASMKUBE_QEMU_AARCH64"    // Debian's qemu-aarch64-static, runs linux/arm64 binaries
)

// Integration skips t under -short. Tests that start real daemons or build binaries call it first.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
}

// Path returns the file or directory named by the environment variable env, with elem joined to it.
// Under -short it skips t; otherwise a missing variable or path fails t with a hint to run `make test`.
func Path(t testing.TB, env string, elem ...string) string {
	t.Helper()
	Integration(t)
	base := os.Getenv(env)
	if base == "" {
		t.Fatalf("%s is not set: run the tests through `make test` (or `hack/tools.sh exec -- go test ...`)", env)
	}
	p := filepath.Join(append([]string{base}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run `hack/tools.sh install` to build the test tools)", p, err)
	}
	return p
}

// Containerd1 returns the path of Debian's containerd 1.6 binary.
func Containerd1(t testing.TB) string { return Path(t, EnvContainerd1) }

// Containerd2Dir returns the directory holding containerd 2.x, ctr and containerd-shim-runc-v2.
// Put it first on a daemon's PATH so that it starts the matching runc shim.
func Containerd2Dir(t testing.TB) string { return Path(t, EnvContainerd2Dir) }

// Runc returns the path of the runc binary.
func Runc(t testing.TB) string { return Path(t, EnvRunc) }

// CNIDir returns the directory of the CNI plugins.
func CNIDir(t testing.TB) string { return Path(t, EnvCNIDir) }

// KubeBinary returns the path of one Kubernetes binary (kube-apiserver, kubelet, ...).
func KubeBinary(t testing.TB, name string) string { return Path(t, EnvKubeDir, name) }

// QemuAarch64 returns the path of qemu-aarch64-static (qemu-user), which runs a linux/arm64 binary
// given as its first argument.
func QemuAarch64(t testing.TB) string { return Path(t, EnvQemuAarch64) }

// EnvtestAssets returns the directory holding kube-apiserver and etcd for envtest.
func EnvtestAssets(t testing.TB) string { return Path(t, EnvEnvtestAssets) }

// LocalClusterLock serialises the tests that start local clusters (test/cluster, test/e2e) across test
// processes: `go test ./...` runs packages in parallel, and a cluster's leak checks look at host-wide
// names (bridge, iptables chain, cgroup of its slot) that another cluster may claim as soon as the slot
// is free. It holds an flock on a file under /tmp until t's cleanup.
func LocalClusterLock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/tmp/wasmkube-localcluster-tests.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("open the local cluster test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("take the local cluster test lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing the file releases the lock
}
