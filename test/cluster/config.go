package cluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultNodeName is the node's name when Config.NodeName is empty.
const DefaultNodeName = "wasmkube-node"

// DefaultContainerdConfigVersion is the containerd config file version written when
// Config.ContainerdConfigVersion is 0 (what containerd 2.0 and 2.1 write, and k3s 1.31+).
const DefaultContainerdConfigVersion = 3

// maxWorkDirLen keeps every unix socket under the work directory below the kernel's 108-byte limit,
// also as an installer pod sees it through its /host mount (5 more bytes). The longest socket is the
// kubelet's WorkDir/host/var/lib/kubelet/device-plugins/kubelet.sock (50 bytes after WorkDir).
const maxWorkDirLen = 107 - 5 - 50

// ErrInvalidConfig is wrapped by every error about a Config that cannot work.
var ErrInvalidConfig = errors.New("invalid cluster config")

// Binaries are the programs the cluster runs.
type Binaries struct {
	// KubeDir holds kube-apiserver, kube-controller-manager, kube-scheduler and kubelet.
	KubeDir string `json:"kubeDir"`
	// Etcd is the etcd binary.
	Etcd string `json:"etcd"`
	// ContainerdDir holds containerd, ctr and containerd-shim-runc-v2 of containerd 2.x.
	ContainerdDir string `json:"containerdDir"`
	// Runc is the runc binary.
	Runc string `json:"runc"`
	// CNIDir holds the CNI plugins bridge, host-local and loopback.
	CNIDir string `json:"cniDir"`
}

// Config describes the cluster to start. The localcluster CLI fills it from flags and WASMKUBE_*
// environment variables; tests fill it from internal/testenv.
type Config struct {
	// WorkDir holds all of the cluster's state. It must be an absolute path of at most 52 bytes (unix
	// sockets live below it) and must not exist yet, or be empty.
	WorkDir string `json:"workDir"`
	// Binaries are the programs to run.
	Binaries Binaries `json:"binaries"`
	// CacheDir keeps the locally built pause image across runs (tests share
	// $WASMKUBE_CACHE_DIR/testbin with internal/containerdtest).
	CacheDir string `json:"cacheDir"`
	// NodeName is the node's name (--hostname-override); DefaultNodeName if empty.
	NodeName string `json:"nodeName"`
	// NodeIP is the node's InternalIP, where the apiserver and the kubelet are reached; if empty, the
	// IPv4 address of the interface holding the default route.
	NodeIP string `json:"nodeIP"`
	// ContainerdConfigVersion is the version of the containerd config file to write (2, 3 or 4);
	// DefaultContainerdConfigVersion if 0.
	ContainerdConfigVersion int `json:"containerdConfigVersion"`
	// Progress receives one line per start-up step; nil discards them.
	Progress io.Writer `json:"-"`
}

// complete returns c with defaults filled in and paths made absolute, or an error wrapping
// ErrInvalidConfig that says what to fix.
func (c Config) complete() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.NodeName == "" {
		c.NodeName = DefaultNodeName
	}
	if c.ContainerdConfigVersion == 0 {
		c.ContainerdConfigVersion = DefaultContainerdConfigVersion
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch {
	case c.WorkDir == "":
		bad("no work directory given")
	case !filepath.IsAbs(c.WorkDir):
		bad("work directory %q is not an absolute path", c.WorkDir)
	case len(filepath.Clean(c.WorkDir)) > maxWorkDirLen:
		bad("work directory %q is %d bytes long; unix sockets below it need it to be at most %d (e.g. /tmp/wasmkube-cluster)",
			c.WorkDir, len(filepath.Clean(c.WorkDir)), maxWorkDirLen)
	default:
		c.WorkDir = filepath.Clean(c.WorkDir)
	}
	if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		bad("node name %q: %s", c.NodeName, msgs[0])
	}
	if c.NodeIP != "" {
		if ip := net.ParseIP(c.NodeIP); ip == nil || ip.To4() == nil || ip.IsLoopback() {
			bad("node IP %q is not a non-loopback IPv4 address", c.NodeIP)
		}
	}
	if v := c.ContainerdConfigVersion; v < 2 || v > 4 {
		bad("containerd config version %d: want 2, 3 or 4", v)
	}
	if c.CacheDir == "" {
		bad("no cache directory for the pause image given")
	} else if abs, err := filepath.Abs(c.CacheDir); err == nil {
		c.CacheDir = abs
	}
	b := &c.Binaries
	for _, f := range []struct {
		what string
		path *string
		dir  bool
	}{
		{"Kubernetes binary directory", &b.KubeDir, true},
		{"etcd binary", &b.Etcd, false},
		{"containerd binary directory", &b.ContainerdDir, true},
		{"runc binary", &b.Runc, false},
		{"CNI plugin directory", &b.CNIDir, true},
	} {
		if *f.path == "" {
			bad("no %s given", f.what)
			continue
		}
		abs, err := filepath.Abs(*f.path)
		if err != nil {
			bad("%s %q: %v", f.what, *f.path, err)
			continue
		}
		*f.path = abs
		if err := checkPath(abs, f.dir); err != nil {
			bad("%s: %v", f.what, err)
		}
	}
	for _, f := range []struct{ dir, name string }{
		{b.KubeDir, "kube-apiserver"}, {b.KubeDir, "kube-controller-manager"}, {b.KubeDir, "kube-scheduler"},
		{b.KubeDir, "kubelet"}, {b.ContainerdDir, "containerd"}, {b.ContainerdDir, "ctr"},
		{b.ContainerdDir, "containerd-shim-runc-v2"}, {b.CNIDir, "bridge"}, {b.CNIDir, "host-local"}, {b.CNIDir, "loopback"},
	} {
		if f.dir == "" {
			continue
		}
		if err := checkPath(filepath.Join(f.dir, f.name), false); err != nil {
			bad("%v", err)
		}
	}
	return c, errors.Join(errs...)
}

// checkPath checks that path is a directory (dir) or an executable file.
func checkPath(path string, dir bool) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case dir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", path)
	case !dir && (fi.IsDir() || fi.Mode()&0o111 == 0):
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
