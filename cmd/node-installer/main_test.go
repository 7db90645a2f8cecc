package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// TestExitCodes runs the built binary: each kind of failure exits with its own code, which the
// installer Job's podFailurePolicy reads (2 and 3 are not retried).
func TestExitCodes(t *testing.T) {
	bin := buildNodeInstaller(t)
	unparseable := t.TempDir()
	if err := os.MkdirAll(filepath.Join(unparseable, "etc/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unparseable, "etc/containerd/config.toml"), []byte("version = 2\n[plugins\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install := func(root string, extra ...string) []string {
		return append([]string{"install", "--host-root=" + root, "--shim-name=s", "--runtime-type=io.containerd.s.v2",
			"--source-builtin=wazero", "--result-file="}, extra...)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		reason string // the result's reason, when the command prints one
	}{
		{name: "version", args: []string{"--version"}, code: installerapi.ExitOK},
		{name: "help", args: []string{"--help"}, code: installerapi.ExitOK},
		{name: "no command", args: nil, code: installerapi.ExitUsage},
		{name: "unknown flag", args: []string{"install", "--shim=s"}, code: installerapi.ExitUsage},
		{name: "missing runtime type", args: []string{"install", "--shim-name=s", "--source-builtin=wazero", "--result-file="},
			code: installerapi.ExitUsage, reason: installerapi.ReasonInvalidArguments},
		{name: "bad restart method", args: install(unparseable, "--restart=reboot"),
			code: installerapi.ExitUsage, reason: installerapi.ReasonInvalidArguments},
		{name: "unparseable config", args: install(unparseable), code: installerapi.ExitPermanent, reason: installerapi.ReasonConfigUnparseable},
		{name: "unknown distribution", args: install(t.TempDir()), code: installerapi.ExitPermanent, reason: installerapi.ReasonDetectFailed},
		{name: "containerd does not answer", args: []string{"verify", "--host-root=" + t.TempDir(), "--cri-socket=/run/none.sock",
			"--handler=s", "--timeout=300ms", "--result-file="}, code: installerapi.ExitTransient, reason: installerapi.ReasonVerifyFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tt.code {
				t.Errorf("node-installer %s: exit code %d, want %d\nstderr: %s", strings.Join(args, " "), code, tt.code, stderr.String())
			}
			if tt.reason != "" {
				r, err := installerapi.Decode(bytes.TrimSpace(stdout.Bytes()))
				if err != nil || r.Reason != tt.reason {
					t.Errorf("result %+v (%v), want reason %s", r, err, tt.reason)
				}
			}
			if tt.name == "version" && !strings.HasPrefix(stdout.String(), "node-installer ") {
				t.Errorf("--version printed %q", stdout.String())
			}
		})
	}
}
