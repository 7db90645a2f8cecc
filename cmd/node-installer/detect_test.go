package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// The detect command prints exactly the profiles pkg/distro's golden tests expect.
func distroHost(name string) string {
	return filepath.Join("..", "..", "pkg", "distro", "testdata", "hosts", name)
}

func distroGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "distro", "testdata", "golden", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDetectCommandInProcess(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		golden  string // expected stdout; empty: an error is expected
		wantErr error
	}{
		{name: "flags", args: []string{"--host-root", distroHost("k3s-v3-server"), "--container-runtime-version", "containerd://2.1.5-k3s1"}, golden: "k3s-v3-server"},
		{name: "env", env: map[string]string{"WASMKUBE_HOST_ROOT": distroHost("k3s-v2-agent"), "WASMKUBE_CONTAINER_RUNTIME_VERSION": "containerd://1.7.26-k3s1"}, golden: "k3s-v2-agent"},
		{name: "forced distro", args: []string{"--host-root", distroHost("containerd-v1"), "--distro", "eks-al2"}, golden: "forced-eks-al2"},
		{name: "overrides", args: []string{"--host-root", distroHost("nonstandard"), "--containerd-config", "/srv/containerd/config.toml", "--cri-socket", "/srv/containerd/run/containerd.sock", "--restart", "signal"}, golden: "override-nonstandard"},
		{name: "restart unit env list", args: []string{"--host-root", distroHost("k3d")}, env: map[string]string{"WASMKUBE_RESTART_UNIT": "k3s-custom"}, golden: "override-units"},
		{name: "unknown host", args: []string{"--host-root", distroHost("unknown")}, wantErr: distro.ErrUnknown},
		{name: "not containerd", args: []string{"--host-root", distroHost("kubeadm-v2"), "--container-runtime-version", "docker://27.3.1"}, wantErr: distro.ErrNotContainerd},
		{name: "bad restart", args: []string{"--host-root", distroHost("kubeadm-v2"), "--restart", "reboot"}},
		{name: "stray argument", args: []string{"--host-root", distroHost("kubeadm-v2"), "extra"}},
		{name: "missing host root", args: []string{"--host-root", filepath.Join(t.TempDir(), "none")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := runDetect(context.Background(), tc.args, env, cli.Streams{Out: &out, ErrOut: &errOut})
			if tc.golden == "" {
				if err == nil {
					t.Fatalf("succeeded, want an error; stdout:\n%s", out.Bytes())
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				if out.Len() != 0 {
					t.Errorf("stdout on error: %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The golden files of pkg/distro carry no host root, so outputs compare byte for byte.
			if want := distroGolden(t, tc.golden); !bytes.Equal(out.Bytes(), want) {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.Bytes(), want)
			}
		})
	}
}

// TestDetectCommandBinary runs the built node-installer: exit 0 with the profile on stdout, or exit 1
// with nothing on stdout and a one-line reason on stderr.
func TestDetectCommandBinary(t *testing.T) {
	bin := buildNodeInstaller(t)
	tests := []struct {
		name   string
		args   []string
		env    []string
		golden string
	}{
		{name: "k3d", args: []string{"--host-root", distroHost("k3d")}, golden: "k3d"},
		{name: "eks-al2023", args: []string{"--host-root", distroHost("eks-al2023-v3"), "--container-runtime-version", "containerd://2.1.4"}, golden: "eks-al2023-v3"},
		{name: "microk8s", env: []string{"WASMKUBE_HOST_ROOT=" + distroHost("microk8s-v2")}, golden: "microk8s-v2"},
		{name: "k0s", args: []string{"--host-root", distroHost("k0s-managed")}, golden: "k0s-managed"},
		{name: "unknown", args: []string{"--host-root", distroHost("unknown")}},
		{name: "ambiguous", args: []string{"--host-root", distroHost("k3s-ambiguous")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"detect"}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			if tc.golden != "" {
				if err != nil {
					t.Fatalf("%v; stderr: %s", err, errOut.String())
				}
				if want := distroGolden(t, tc.golden); !bytes.Equal(out.Bytes(), want) {
					t.Errorf("stdout:\n%s\nwant:\n%s", out.Bytes(), want)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != installerapi.ExitPermanent {
				t.Fatalf("exit %v, want exit status %d (retrying on this host cannot help)", err, installerapi.ExitPermanent)
			}
			if out.Len() != 0 {
				t.Errorf("stdout on error: %q", out.String())
			}
			if lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "node-installer: detect") {
				t.Errorf("stderr is not one 'node-installer: detect...' line: %q", errOut.String())
			}
		})
	}
}
