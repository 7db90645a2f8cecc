package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
)

// runCmd runs one node-installer command in process with the given environment.
func runCmd(t *testing.T, env map[string]string, args ...string) (installerapi.Result, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Dispatch(context.Background(), "node-installer", commands(), args,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok }, cli.Streams{Out: &out, ErrOut: &errOut})
	var r installerapi.Result
	if bytes.HasPrefix(out.Bytes(), []byte("{")) { // a dry run prints its plan instead
		var derr error
		if r, derr = installerapi.Decode(out.Bytes()); derr != nil {
			t.Fatalf("stdout is not a result: %v\n%s", derr, out.String())
		}
	}
	return r, out.String(), err
}

func TestInstallArgumentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"no source", []string{"--shim-name=s", "--runtime-type=io.containerd.s.v2"}, "exactly one shim source"},
		{"two sources", []string{"--shim-name=s", "--runtime-type=io.containerd.s.v2", "--source-builtin=wazero", "--source-http-url=https://x/y", "--source-sha256=ab"}, "exactly one shim source"},
		{"no runtime type", []string{"--shim-name=s", "--source-builtin=wazero"}, "--runtime-type"},
		{"bad option", []string{"--shim-name=s", "--runtime-type=io.containerd.s.v2", "--source-builtin=wazero", "--option=novalue"}, "novalue"},
		{"http without sha", []string{"--shim-name=s", "--runtime-type=io.containerd.s.v2", "--source-http-url=https://x/y"}, "--source-sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resultFile := filepath.Join(t.TempDir(), "termination-log")
			args := append([]string{"install", "--host-root=" + t.TempDir(), "--result-file=" + resultFile}, tt.args...)
			r, _, err := runCmd(t, nil, args...)
			if err == nil || r.Success || r.Reason != installerapi.ReasonInvalidArguments || !strings.Contains(r.Error, tt.says) {
				t.Fatalf("got %v %+v, want InvalidArguments mentioning %q", err, r, tt.says)
			}
			if data, _ := os.ReadFile(resultFile); !bytes.Contains(data, []byte(installerapi.ReasonInvalidArguments)) {
				t.Errorf("result file holds %q", data)
			}
		})
	}
}

// Flags come from WASMKUBE_* variables too; options one per line.
func TestInstallDryRunFromEnvironment(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := []byte("version = 3\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n")
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"WASMKUBE_HOST_ROOT": root, "WASMKUBE_SHIM_NAME": "spin", "WASMKUBE_RUNTIME_TYPE": "io.containerd.spin.v2",
		"WASMKUBE_OPTION": "SystemdCgroup=true\nConfigPath=\"/etc/spin, with comma.toml\"", "WASMKUBE_DRY_RUN": "true",
	}
	_, out, err := runCmd(t, env, "install")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+  SystemdCgroup = true", "+  ConfigPath = '/etc/spin, with comma.toml'", "runtime_type:    /opt/wasmkube/bin/containerd-shim-spin-v2"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/containerd/config.toml")); !bytes.Equal(got, cfg) {
		t.Error("dry run wrote the config")
	}
}

func TestVerifyWithoutContainerd(t *testing.T) {
	t.Parallel()
	r, _, err := runCmd(t, nil, "verify", "--host-root="+t.TempDir(), "--cri-socket=/run/none.sock", "--handler=spin",
		"--timeout=300ms", "--result-file=")
	if err == nil || r.Operation != installerapi.OpVerify || r.Reason != installerapi.ReasonVerifyFailed || !strings.Contains(r.Error, "spin") {
		t.Fatalf("got %v %+v", err, r)
	}
}
