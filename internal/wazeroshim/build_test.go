package wazeroshim_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// TestCrossCompile builds the shim for every platform the node-installer image ships, without cgo,
// and checks that each result is a static ELF binary for that machine.
func TestCrossCompile(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "containerd-shim-wazero-v1")
			cmd := exec.Command("go", "build", "-o", out, "github.com/wasmkube/wasmkube/cmd/containerd-shim-wazero-v1")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOARCH=%s go build: %v\n%s", arch, err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != machine {
				t.Errorf("machine %s, want %s", f.Machine, machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("the %s binary asks for a dynamic loader: not static", arch)
				}
			}
		})
	}
}
