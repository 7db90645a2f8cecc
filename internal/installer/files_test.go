package installer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirFSFollowsLinksInsideRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := DirFS{Root: root}
	if err := d.WriteFile("/etc/containerd/real.toml", []byte("version = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An absolute link as the host sees it, and a relative one through a linked directory.
	if err := os.Symlink("/etc/containerd/real.toml", filepath.Join(root, "etc/containerd/config.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("etc/containerd", filepath.Join(root, "cd")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/etc/containerd/config.toml", "/cd/config.toml", "/cd/../cd/real.toml"} {
		if got, want := d.HostPath(p), filepath.Join(root, "etc/containerd/real.toml"); got != want {
			t.Errorf("HostPath(%s) = %s, want %s", p, got, want)
		}
	}
	if err := d.WriteFile("/etc/containerd/config.toml", []byte("version = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/containerd/config.toml")); err != nil || target != "/etc/containerd/real.toml" {
		t.Errorf("write replaced the link: %q %v", target, err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "etc/containerd/real.toml")); string(data) != "version = 3\n" {
		t.Errorf("link target holds %q", data)
	}
	if got := d.HostPath("/missing/dir/file"); got != filepath.Join(root, "missing/dir/file") {
		t.Errorf("missing path: %s", got)
	}
}
