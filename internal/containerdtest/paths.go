package containerdtest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// NewPaths allocates the private paths of one daemon: a short directory under /tmp for sockets, state,
// runc root, IPAM data and the log, and (with hostRoot set) the node-like layout
// hostRoot/etc/containerd/config.toml, hostRoot/var/lib/containerd and hostRoot/etc/cni/net.d.
// It writes the daemon's CNI conflist: a bridge of its own without a gateway address (so no host
// routes, and every daemon can use the same subnet) and host-local IPAM in its own data dir.
// t.Cleanup unmounts whatever is left mounted under these paths, deletes the bridge and removes the
// files. Use it directly to know the paths before Start (to build a config for Options.Config).
func NewPaths(t testing.TB, hostRoot string) Paths {
	t.Helper()
	runc, cniBin := testenv.Runc(t), testenv.CNIDir(t)
	dir, err := os.MkdirTemp("/tmp", "wk")
	if err != nil {
		t.Fatalf("create daemon dir: %v", err)
	}
	p := Paths{
		Dir:        dir,
		HostRoot:   hostRoot,
		Config:     filepath.Join(dir, "config.toml"),
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Socket:     filepath.Join(dir, "containerd.sock"),
		TTRPC:      filepath.Join(dir, "containerd.sock.ttrpc"),
		RuncRoot:   filepath.Join(dir, "runc"),
		Runc:       runc,
		CNIBinDir:  cniBin,
		CNIConfDir: filepath.Join(dir, "net.d"),
		CNIDataDir: filepath.Join(dir, "ipam"),
		Bridge:     "wk" + strings.TrimPrefix(filepath.Base(dir), "wk"),
		Log:        filepath.Join(dir, "containerd.log"),
	}
	if hostRoot != "" {
		p.Config = filepath.Join(hostRoot, "etc", "containerd", "config.toml")
		p.Root = filepath.Join(hostRoot, "var", "lib", "containerd")
		p.CNIConfDir = filepath.Join(hostRoot, "etc", "cni", "net.d")
	}
	t.Cleanup(func() {
		if err := p.remove(); err != nil {
			t.Errorf("clean up containerd paths: %v", err)
		}
	})
	if len(p.Bridge) > unix.IFNAMSIZ-1 {
		t.Fatalf("bridge name %q is too long", p.Bridge)
	}
	for _, d := range []string{filepath.Dir(p.Config), p.Root, p.State, p.RuncRoot, p.CNIConfDir, p.CNIDataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("create %s: %v", d, err)
		}
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": false,
      "ipMasq": false,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": %q}
    },
    {"type": "loopback"}
  ]
}
`, p.Bridge, p.Bridge, p.CNIDataDir)
	if err := os.WriteFile(filepath.Join(p.CNIConfDir, "10-wasmkube-test.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatalf("write CNI config: %v", err)
	}
	return p
}

// remove unmounts what is left under the daemon's directories (deepest first), deletes its bridge and
// removes its files. The host root itself belongs to the caller; only the parts the daemon uses go.
func (p Paths) remove() error {
	var errs []error
	dirs := []string{p.Dir, p.Root}
	mounts, err := mountsUnder(dirs)
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", p.Bridge)); err == nil {
		if out, err := exec.Command("ip", "link", "delete", p.Bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w: %s", p.Bridge, err, out))
		}
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points below any of dirs, deepest first.
func mountsUnder(dirs []string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		for _, d := range dirs {
			if strings.HasPrefix(mp, d+"/") {
				found = append(found, mp)
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	slices.SortFunc(found, func(a, b string) int { return len(b) - len(a) })
	return found, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
