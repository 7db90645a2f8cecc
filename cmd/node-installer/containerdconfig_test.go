package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// buildNodeInstaller builds the real binary into a temporary directory.
func buildNodeInstaller(t *testing.T) string {
	t.Helper()
	testenv.Integration(t)
	bin := filepath.Join(t.TempDir(), "node-installer")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func fixture(name string) string {
	return filepath.Join("..", "..", "pkg", "containerdcfg", "testdata", "input", name)
}

// TestContainerdConfigCommand runs the built binary: stdout carries exactly the patched document on
// success and nothing on failure, where stderr has one line and the exit code says whether the command
// line was wrong (2), the config cannot be edited (3) or something else failed (1).
func TestContainerdConfigCommand(t *testing.T) {
	bin := buildNodeInstaller(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(fixture(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rt := containerdcfg.Runtime{
		Handler: "wazero", Type: "io.containerd.wazero.v1", Path: "/opt/wasmkube/bin/containerd-shim-wazero-v1",
		Options: []containerdcfg.Option{{Key: "SystemdCgroup", Value: false}, {Key: "Pages", Value: int64(16)}, {Key: "Name", Value: "x"}},
	}
	added, err := containerdcfg.AddRuntime(read("kind-v2.toml"), rt, containerdcfg.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := containerdcfg.AddRuntime(read("conflict-v2.toml"), rt, containerdcfg.PatchOptions{Adopt: true})
	if err != nil {
		t.Fatal(err)
	}
	forMajor := map[int][]byte{}
	for _, major := range []int{1, 2} {
		if forMajor[major], err = containerdcfg.AddRuntime(read("debian-v2.toml"), rt, containerdcfg.PatchOptions{ContainerdMajor: major}); err != nil {
			t.Fatal(err)
		}
	}
	managed := filepath.Join(t.TempDir(), "managed.toml")
	if err := os.WriteFile(managed, added, 0o600); err != nil {
		t.Fatal(err)
	}
	addArgs := []string{"--handler", "wazero", "--runtime-type", rt.Type, "--runtime-path", rt.Path,
		"--option", "SystemdCgroup=false", "--option", "Pages=16", "--option", `Name="x"`}
	cases := []struct {
		name    string
		args    []string
		env     []string
		wantOut []byte
		wantErr string // substring of the one stderr line; "" means success
		code    int    // exit code on failure
		usage   bool   // usage text precedes the error line
	}{
		{name: "add", args: append([]string{"add", "--file", fixture("kind-v2.toml")}, addArgs...), wantOut: added},
		{name: "add from env", args: []string{"add", "--option", "SystemdCgroup=false", "--option", "Pages=16", "--option", `Name="x"`},
			env: []string{"WASMKUBE_FILE=" + fixture("kind-v2.toml"), "WASMKUBE_HANDLER=wazero", "WASMKUBE_RUNTIME_TYPE=" + rt.Type, "WASMKUBE_RUNTIME_PATH=" + rt.Path}, wantOut: added},
		{name: "add again is a no-op", args: append([]string{"add", "--file", managed}, addArgs...), wantOut: added},
		{name: "remove", args: []string{"remove", "--file", managed, "--handler", "wazero"}, wantOut: read("kind-v2.toml")},
		{name: "version", args: []string{"version", "--file", fixture("containerd24-default-v4.toml")}, wantOut: []byte("4\n")},
		{name: "template version", args: []string{"version", "--file", fixture("k3s-config.toml.tmpl"), "--default-version", "2"}, wantOut: []byte("2\n")},
		{name: "adopt", args: append([]string{"add", "--file", fixture("conflict-v2.toml"), "--adopt"}, addArgs...), wantOut: adopted},
		{name: "containerd 1.x", args: append([]string{"add", "--file", fixture("debian-v2.toml"), "--containerd-version", "1.6.20"}, addArgs...), wantOut: forMajor[1]},
		{name: "containerd 2.x", args: append([]string{"add", "--file", fixture("debian-v2.toml"), "--containerd-version", "containerd://2.1.5-k3s1"}, addArgs...), wantOut: forMajor[2]},
		{name: "containerd2-only", args: append([]string{"add", "--file", fixture("debian-v2.toml"), "--containerd2-only"}, addArgs...), wantOut: forMajor[2]},
		{name: "containerd version needed", args: append([]string{"add", "--file", fixture("debian-v2.toml")}, addArgs...), wantErr: "pass --containerd-version 1 or 2", code: 2},
		{name: "containerd 1.x and version 3", args: append([]string{"add", "--file", fixture("kind-v3.toml"), "--containerd-version", "1"}, addArgs...), wantErr: "containerd 1.x reads versions 1 and 2 only", code: 3},
		{name: "contradicting flags", args: append([]string{"add", "--file", fixture("debian-v2.toml"), "--containerd2-only", "--containerd-version", "1"}, addArgs...), wantErr: "--containerd2-only contradicts --containerd-version 1", code: 2},
		{name: "bad containerd version", args: append([]string{"add", "--file", fixture("debian-v2.toml"), "--containerd-version", "3.0"}, addArgs...), wantErr: `--containerd-version: "3.0": want containerd 1.x or 2.x`, code: 2},
		{name: "template without version", args: append([]string{"add", "--file", fixture("k3s-config.toml.tmpl")}, addArgs...), wantErr: "; pass --default-version", code: 3},
		{name: "unparseable file", args: append([]string{"add", "--file", fixture("unparseable.toml")}, addArgs...), wantErr: "containerd config is not valid TOML: line 2 column 37", code: 3},
		{name: "unknown version", args: append([]string{"add", "--file", fixture("version5.toml")}, addArgs...), wantErr: "unknown containerd config version: version 5", code: 3},
		{name: "conflict", args: append([]string{"add", "--file", fixture("conflict-v2.toml")}, addArgs...), wantErr: "runtime wazero (plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wazero) was not written by wasmkube; adopt it to take it over with --adopt", code: 3},
		{name: "inline table", args: append([]string{"add", "--file", fixture("inline-runtimes-v2.toml")}, addArgs...), wantErr: "is an inline table", code: 3},
		{name: "remove from unparseable", args: []string{"remove", "--file", fixture("unparseable.toml"), "--handler", "wazero"}, wantErr: "not valid TOML", code: 3},
		{name: "missing file", args: append([]string{"add", "--file", "/nonexistent/config.toml"}, addArgs...), wantErr: "read containerd config: open /nonexistent/config.toml", code: 1},
		{name: "missing runtime type", args: []string{"add", "--file", fixture("kind-v2.toml"), "--handler", "wazero"}, wantErr: "--runtime-type is required", code: 2},
		{name: "bad option", args: append([]string{"add", "--file", fixture("kind-v2.toml"), "--option", "novalue"}, addArgs...), wantErr: `option "novalue" is not key=value`, code: 2},
		{name: "bad handler", args: []string{"remove", "--file", fixture("kind-v2.toml"), "--handler", "Bad_Name"}, wantErr: "must be a lowercase RFC 1123 label", code: 2},
		{name: "unknown subcommand", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`, code: 2, usage: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, append([]string{"containerd-config"}, c.args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("%v: %v\n%s", c.args, err, stderr.Bytes())
				}
				if !bytes.Equal(stdout.Bytes(), c.wantOut) {
					t.Errorf("stdout:\n%s\nwant:\n%s", stdout.Bytes(), c.wantOut)
				}
				return
			}
			if code := cmd.ProcessState.ExitCode(); code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty on error:\n%s", stdout.Bytes())
			}
			last := strings.TrimSuffix(stderr.String(), "\n")
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				if !c.usage {
					t.Errorf("stderr has more than one line:\n%s", stderr.Bytes())
				}
				last = last[i+1:]
			}
			if !strings.HasPrefix(last, "node-installer: ") || !strings.Contains(last, c.wantErr) {
				t.Errorf("stderr last line = %q, want node-installer: ...%s...", last, c.wantErr)
			}
		})
	}
}
