package distro

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

func TestRuntimeMajor(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr error // nil with bad true: any error
		bad     bool
	}{
		{in: "", want: 0},
		{in: "containerd://1.6.20", want: 1},
		{in: "containerd://1.7.27-k3s1", want: 1},
		{in: "containerd://2.1.5-k3s1", want: 2},
		{in: "containerd://v2.4.2", want: 2},
		{in: "containerd://2.2.2-bd1.34", want: 2},
		{in: "docker://27.3.1", wantErr: ErrNotContainerd},
		{in: "cri-o://1.33.0", wantErr: ErrNotContainerd},
		{in: "containerd://", bad: true},
		{in: "containerd://latest", bad: true},
		{in: "2.1.5", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := runtimeMajor(tc.in)
			switch {
			case tc.wantErr != nil || tc.bad:
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("got %d, %v; want error %v", got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Fatalf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestBuildMajor(t *testing.T) {
	mod := func(p, v string) *debug.Module { return &debug.Module{Path: p, Version: v} }
	tests := []struct {
		name string
		info debug.BuildInfo
		want int
	}{
		{"containerd 2 build", debug.BuildInfo{Path: "github.com/containerd/containerd/v2/cmd/containerd", Main: *mod(modContainerd2, "v2.4.2")}, 2},
		{"distro build without module info", debug.BuildInfo{Path: "github.com/containerd/containerd/cmd/containerd"}, 1},
		{"k3s with containerd 2 and an old v1 client", debug.BuildInfo{Path: "github.com/k3s-io/k3s/cmd/server", Main: *mod("github.com/k3s-io/k3s", "v1.33.1"),
			Deps: []*debug.Module{mod(modContainerd1, "v1.7.27"), mod(modContainerd2, "v2.0.5")}}, 2},
		{"k3s with containerd 1.7", debug.BuildInfo{Path: "github.com/k3s-io/k3s/cmd/server", Deps: []*debug.Module{mod(modContainerd1, "v1.7.23")}}, 1},
		{"unrelated", debug.BuildInfo{Path: "example.com/tool", Main: *mod("example.com/tool", "v1.0.0")}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, detail := buildMajor(&tc.info); got != tc.want {
				t.Errorf("got %d (%s), want %d", got, detail, tc.want)
			}
		})
	}
}

// copyFile copies a binary into a host root (a link would point outside it).
func copyFile(t *testing.T, src, root, hostPath string) {
	t.Helper()
	dst := filepath.Join(root, hostPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDetectReadsRealBinaries builds host roots holding the real containerd 1.6 (Debian) and 2.4.2
// binaries and checks that, without a runtime version hint, the major version comes from them and
// decides what the host files alone cannot.
func TestDetectReadsRealBinaries(t *testing.T) {
	c1 := testenv.Containerd1(t)
	c2 := filepath.Join(testenv.Containerd2Dir(t), "containerd")
	mkdir := func(root, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("kubeadm with containerd 1.6", func(t *testing.T) {
		root := t.TempDir()
		copyFile(t, c1, root, "/usr/bin/containerd")
		mkdir(root, "/run/systemd/system")
		p, err := Detect(root, Hints{})
		if err != nil {
			t.Fatal(err)
		}
		if p.ContainerdMajor != 1 || p.Distro != "containerd" || p.Config.Version != 0 {
			t.Errorf("got %s major %d version %d, want containerd major 1 version 0 (no config file)\n%v", p.Distro, p.ContainerdMajor, p.Config.Version, p.Evidence)
		}
	})

	// Both templates exist and nothing is rendered yet: only the binary says which one k3s reads.
	for _, tc := range []struct {
		name, bin, wantTmpl string
		wantMajor           int
	}{
		{"k3s with containerd 2.4.2", c2, "config-v3.toml.tmpl", 2},
		{"k3s with containerd 1.6", c1, "config.toml.tmpl", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			etc := "/var/lib/rancher/k3s/agent/etc/containerd"
			mkdir(root, etc)
			for _, f := range []string{"config-v3.toml.tmpl", "config.toml.tmpl"} {
				if err := os.WriteFile(filepath.Join(root, etc, f), []byte(TemplateSeed), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// k3s links data/current to the versioned data dir.
			copyFile(t, tc.bin, root, "/var/lib/rancher/k3s/data/f1e2d3/bin/containerd")
			if err := os.Symlink("/var/lib/rancher/k3s/data/f1e2d3", filepath.Join(root, "/var/lib/rancher/k3s/data/current")); err != nil {
				t.Fatal(err)
			}
			p, err := Detect(root, Hints{})
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if p.ContainerdMajor != tc.wantMajor || p.Config.Path != etc+"/"+tc.wantTmpl {
				t.Errorf("got major %d template %s, want %d %s\n%v", p.ContainerdMajor, p.Config.Path, tc.wantMajor, tc.wantTmpl, p.Evidence)
			}
		})
	}
}
