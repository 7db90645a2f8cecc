package installer

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
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
		if got, err := d.HostPath(p); err != nil || got != filepath.Join(root, "etc/containerd/real.toml") {
			t.Errorf("HostPath(%s) = %s, %v, want %s", p, got, err, filepath.Join(root, "etc/containerd/real.toml"))
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
	if got, err := d.HostPath("/missing/dir/file"); err != nil || got != filepath.Join(root, "missing/dir/file") {
		t.Errorf("missing path: %s, %v", got, err)
	}
}

// A host whose config is a symbolic link leading out of the host root (absolute, or through "..")
// must not let a write or a read reach the installer's own filesystem: the link resolves inside the
// root, as it would on the host. The positive control is the same write through a link inside the root.
func TestDirFSLinksCannotEscapeRoot(t *testing.T) {
	t.Parallel()
	outside := t.TempDir() // the installer's filesystem, outside the host root
	victim := filepath.Join(outside, "victim.toml")
	const config = "/etc/containerd/config.toml"
	tests := []struct {
		name         string
		link, target string // the host's link and where it points
		file         string // the host path written and read
		escapes      bool   // the target is outside the root
	}{
		{"inside (positive control)", config, "/etc/containerd/real.toml", config, false},
		{"absolute outside", config, victim, config, true},
		{"dotdot outside", config, "../../../../../../../../../../.." + victim, config, true},
		{"directory outside", "/etc/containerd/conf.d", outside, "/etc/containerd/conf.d/victim.toml", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			d := DirFS{Root: root}
			if err := os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.target, filepath.Join(root, tt.link)); err != nil {
				t.Fatal(err)
			}
			file := tt.file
			if data, err := d.ReadFile(file); err == nil && string(data) == "untouched" {
				t.Fatalf("a read through %s -> %s reached %s outside the host root", tt.link, tt.target, victim)
			}
			if err := d.WriteFile(file, []byte("written"), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := d.ReadFile(file)
			if err != nil || string(got) != "written" {
				t.Fatalf("read back %q, %v", got, err)
			}
			if data, _ := os.ReadFile(victim); string(data) != "untouched" {
				t.Fatalf("a write through %s -> %s reached %s outside the host root", tt.link, tt.target, victim)
			}
			full, err := d.HostPath(file)
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, full); err != nil || !filepath.IsLocal(rel) {
				t.Errorf("HostPath(%s) = %s, outside %s", file, full, root)
			}
			if !tt.escapes {
				if data, _ := os.ReadFile(filepath.Join(root, "etc/containerd/real.toml")); string(data) != "written" {
					t.Errorf("the link inside the root was not followed: real.toml holds %q", data)
				}
			}
		})
	}
}

func TestDirFSLinkLoop(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.Symlink("b", filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := (DirFS{Root: root}).ReadFile("/a/x"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("read through a link loop: %v, want ELOOP", err)
	}
}
