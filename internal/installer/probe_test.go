package installer

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// TestExecProber runs real files through the kernel: the binary a shim source delivers must execute
// on the node, and when it does not the error says why (wrong architecture, corrupt, missing loader).
// /bin/true is a dynamically linked ELF executable for this machine; the wrong-architecture file is a
// copy whose ELF header names another machine, which is exactly what the kernel checks.
func TestExecProber(t *testing.T) {
	t.Parallel()
	trueBin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("this test needs /bin/true: %v", err)
	}
	other, otherArch := elf.EM_AARCH64, "arm64"
	if runtime.GOARCH == "arm64" {
		other, otherArch = elf.EM_X86_64, "amd64"
	}
	foreign := patchMachine(t, trueBin, other)

	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// An empty root holding only a copy of /bin/true: no dynamic loader there.
	bare := t.TempDir()
	if err := os.WriteFile(filepath.Join(bare, "shim"), trueBin, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		root    string
		binary  string
		timeout time.Duration
		want    string // output on success
		fails   string // substring of the error; "" means success
	}{
		{name: "shim prints its version", binary: write("ok", []byte("#!/bin/sh\necho \"shim:\n  Version: $1 1.2.3\"\n"), 0o755), want: "shim: Version: -v 1.2.3"},
		{name: "native ELF binary", binary: write("native", trueBin, 0o755)},
		{name: "native binary chrooted into /", root: "/", binary: write("native-root", trueBin, 0o755)},
		{name: "wrong architecture", binary: write("foreign", foreign, 0o755),
			fails: "built for " + otherArch + ", this node is linux/" + runtime.GOARCH},
		{name: "truncated ELF", binary: write("truncated", trueBin[:100], 0o755), fails: "exec format error: corrupt ELF file"},
		{name: "not an executable", binary: write("garbage", []byte("garbage!"), 0o755), fails: `not an ELF executable (it begins with "garb")`},
		{name: "missing loader", root: bare, binary: "/shim", fails: "linked dynamically against the loader /lib"},
		{name: "no execute permission", binary: write("noexec", trueBin, 0o644), fails: "permission denied"},
		{name: "missing file", binary: filepath.Join(dir, "nope"), fails: "no such file"},
		{name: "fails its -v", binary: write("exit3", []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755), fails: "exited with exit status 3: broken"},
		{name: "hangs", binary: write("hang", []byte("#!/bin/sh\nexec sleep 30\n"), 0o755), timeout: 300 * time.Millisecond,
			fails: "did not exit within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ExecProber{Root: tt.root, Timeout: tt.timeout}.Probe(context.Background(), tt.binary)
			if tt.fails == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Probe = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrNotRunnable) || !strings.Contains(err.Error(), tt.fails) {
				t.Fatalf("Probe = %q, %v; want ErrNotRunnable saying %q", got, err, tt.fails)
			}
		})
	}
}

// TestExecProberChroot is the positive control of the chrooted cases: a static binary in a root of its
// own runs there and prints its version.
func TestExecProberChroot(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "main.go")
	prog := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"static-shim:\\n  Version: 1.0.0\") }\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(root, "shim"), src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a static binary: %v\n%s", err, out)
	}
	got, err := ExecProber{Root: root}.Probe(context.Background(), "/shim")
	if err != nil || got != "static-shim: Version: 1.0.0" {
		t.Fatalf("Probe = %q, %v", got, err)
	}
}

// patchMachine returns a copy of an ELF file whose header names another machine.
func patchMachine(t *testing.T, data []byte, m elf.Machine) []byte {
	t.Helper()
	f, err := elf.NewFile(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(nil), data...)
	// e_machine is the 16-bit field at offset 18 of the ELF header, in the file's byte order.
	f.ByteOrder.PutUint16(out[18:20], uint16(m))
	return out
}
