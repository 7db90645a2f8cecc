package distro

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestHostFSResolve checks that links resolve inside the host root: absolute targets restart at the
// root, ".." stops at the root, and loops fail.
func TestHostFSResolve(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir() // a file the host must never reach
	mk := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk("/etc/real.toml", "inside")
	mk("/usr/bin/tool", "tool")
	link("/etc/abs.toml", "/etc/real.toml")
	link("/etc/rel.toml", "real.toml")
	link("/etc/escape-abs", filepath.Join(outside, "secret"))
	link("/etc/escape-dotdot", "../../../../../../../../"+filepath.Join(outside, "secret"))
	link("/bin", "usr/bin")
	link("/var/run", "/run")
	link("/loop/a", "b")
	link("/loop/b", "a")

	h := hostFS{root: root}
	tests := []struct {
		path    string
		want    string // content; "" means absent
		wantErr error
	}{
		{path: "/etc/real.toml", want: "inside"},
		{path: "/etc/abs.toml", want: "inside"},
		{path: "/etc/rel.toml", want: "inside"},
		{path: "/bin/tool", want: "tool"},
		{path: "/etc/../etc/./real.toml", want: "inside"},
		{path: "/../../etc/real.toml", want: "inside"},
		{path: "/etc/escape-abs"},     // resolves to <root>/<outside>/secret: absent
		{path: "/etc/escape-dotdot"},  // ".." stops at the root: absent
		{path: "/var/run/containerd"}, // a link to a missing directory
		{path: "/etc/real.toml/x"},    // a file where a directory is expected
		{path: "/loop/a", wantErr: syscall.ELOOP},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			data, ok, err := h.readFile(tc.path)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tc.want == "" && ok:
				t.Fatalf("read %q, want absent", data)
			case tc.want != "" && string(data) != tc.want:
				t.Fatalf("read %q (ok %v), want %q", data, ok, tc.want)
			}
		})
	}
	if _, err := h.resolve("etc/real.toml"); err == nil {
		t.Error("relative host path accepted")
	}
}
