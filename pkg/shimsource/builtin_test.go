package shimsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

func TestBuiltinFetch(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	content := []byte(binary("wazero"))
	if err := os.WriteFile(filepath.Join(src, "containerd-shim-wazero-v1"), content, 0o555); err != nil {
		t.Fatal(err)
	}
	dirOnly := t.TempDir()
	if err := os.Mkdir(filepath.Join(dirOnly, "containerd-shim-wazero-v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := platform.Platform{OS: "linux", Architecture: "riscv64"}
	if platform.Host().Architecture == "riscv64" {
		other.Architecture = "s390x"
	}
	tests := []struct {
		name     string
		b        Builtin
		platform platform.Platform
		wantErr  error // nil: success
		anyErr   bool
	}{
		{name: "found", b: Builtin{Dir: src, Name: "wazero"}, platform: platform.Host()},
		{name: "found, platform without variant", b: Builtin{Dir: src, Name: "wazero"},
			platform: platform.Platform{OS: platform.Host().OS, Architecture: platform.Host().Architecture}},
		{name: "unknown name", b: Builtin{Dir: src, Name: "spin"}, platform: platform.Host(), wantErr: ErrNotFound},
		{name: "binary missing from the image", b: Builtin{Dir: t.TempDir(), Name: "wazero"}, platform: platform.Host(), wantErr: ErrNotFound},
		{name: "other platform", b: Builtin{Dir: src, Name: "wazero"}, platform: other, wantErr: ErrNoPlatform},
		{name: "directory instead of a binary", b: Builtin{Dir: dirOnly, Name: "wazero"}, platform: platform.Host(), anyErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			a, err := tc.b.Fetch(context.Background(), tc.platform, dest)
			if tc.wantErr != nil || tc.anyErr {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("Fetch = %+v, %v; want error %v", a, err, tc.wantErr)
				}
				t.Logf("error (expected): %v", err)
				requireEmptyDir(t, dest)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			requireOnly(t, dest, "containerd-shim-wazero-v1", content)
			if a.SHA256 != sha(content) || a.Digest != "sha256:"+sha(content) || a.Source != "builtin:wazero" {
				t.Errorf("artifact %+v", a)
			}
		})
	}
}

func TestBuiltinNames(t *testing.T) {
	for _, n := range BuiltinNames() {
		if b, ok := BuiltinBinary(n); !ok || b == "" {
			t.Errorf("BuiltinBinary(%q) = %q, %t", n, b, ok)
		}
	}
	if _, ok := BuiltinBinary("nope"); ok {
		t.Error(`BuiltinBinary("nope") found a binary`)
	}
}

// Stage leaves the binary hidden until Finish names it; Discard leaves nothing behind.
func TestBuiltinStage(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	content := []byte(binary("wazero"))
	if err := os.WriteFile(filepath.Join(src, "containerd-shim-wazero-v1"), content, 0o555); err != nil {
		t.Fatal(err)
	}
	b := Builtin{Dir: src, Name: "wazero"}
	for _, finish := range []bool{true, false} {
		dest := t.TempDir()
		st, err := b.Stage(context.Background(), platform.Host(), dest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dest, "containerd-shim-wazero-v1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("staged binary visible under its name before Finish: %v", err)
		}
		if !finish {
			st.Discard()
			requireEmptyDir(t, dest)
			continue
		}
		a, err := st.Finish()
		if err != nil {
			t.Fatal(err)
		}
		requireOnly(t, dest, "containerd-shim-wazero-v1", content)
		if a.File != filepath.Join(dest, "containerd-shim-wazero-v1") || a.SHA256 != sha(content) || a.Digest != "sha256:"+sha(content) {
			t.Errorf("artifact %+v", a)
		}
	}
}
