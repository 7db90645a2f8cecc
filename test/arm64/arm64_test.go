package arm64

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
)

// binaries are built once per test binary, as the image builds them, into dir.
var binaries struct {
	once                     sync.Once
	err                      error
	dir                      string
	installerHost, installer string // node-installer for this machine and for linux/arm64
	shimHost, shim           string // containerd-shim-wazero-v1 likewise
	runwasm                  string // testdata/runwasm for linux/arm64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

func build(t *testing.T) {
	t.Helper()
	testenv.Integration(t)
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "wk-arm64")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		c := images.Compiler{ModuleDir: filepath.Join("..", "..")}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
		// Same names in two directories: the shim prints its own name.
		host, arm := filepath.Join(dir, runtime.GOARCH), filepath.Join(dir, "arm64")
		binaries.installerHost = filepath.Join(host, "node-installer")
		binaries.installer = filepath.Join(arm, "node-installer")
		binaries.shimHost = filepath.Join(host, "containerd-shim-wazero-v1")
		binaries.shim = filepath.Join(arm, "containerd-shim-wazero-v1")
		binaries.runwasm = filepath.Join(arm, "runwasm")
		for _, b := range []struct {
			pkg, out string
			p        v1.Platform
		}{
			{"./cmd/node-installer", binaries.installerHost, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}},
			{"./cmd/node-installer", binaries.installer, arm64},
			{"./cmd/containerd-shim-wazero-v1", binaries.shimHost, v1.Platform{OS: "linux", Architecture: runtime.GOARCH}},
			{"./cmd/containerd-shim-wazero-v1", binaries.shim, arm64},
			{"./test/arm64/testdata/runwasm", binaries.runwasm, arm64},
		} {
			if binaries.err = c.Compile(ctx, b.pkg, b.p, b.out); binaries.err != nil {
				return
			}
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
}

// run runs the node-installer (under qemu when arm64) and returns stdout, stderr and the exit code.
func run(t *testing.T, arm64 bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binaries.installerHost, args...)
	if arm64 {
		cmd = exec.CommandContext(ctx, testenv.QemuAarch64(t), append([]string{binaries.installer}, args...)...)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestNodeInstaller runs `detect` on distro fixtures and `containerd-config add` on vendor configs
// with the arm64 node-installer under qemu and with this machine's build: stdout, stderr and exit code
// are the same. The cases include a refusal (containerd 1.x and a version 3 file) and an unsupported
// host. A positive control shows that the arm64 binary is not what runs natively here.
func TestNodeInstaller(t *testing.T) {
	t.Parallel()
	build(t)
	if err := exec.Command(binaries.installer, "detect").Run(); err == nil {
		t.Fatal("the arm64 node-installer ran natively: it is not an arm64 binary, or binfmt_misc runs it")
	}
	hosts := filepath.Join("..", "..", "pkg", "distro", "testdata", "hosts")
	corpus := filepath.Join("..", "..", "pkg", "containerdcfg", "testdata", "corpus")
	add := func(file, version string) []string {
		return []string{"containerd-config", "add", "--file", filepath.Join(corpus, file), "--handler", "wazero",
			"--runtime-type", "/var/lib/wasmkube/bin/containerd-shim-wazero-v1", "--option", "SystemdCgroup=true",
			"--containerd-version", version}
	}
	detect := func(host string, hint ...string) []string {
		return append([]string{"detect", "--host-root", filepath.Join(hosts, host)}, hint...)
	}
	for name, args := range map[string][]string{
		"detect kind":                        detect("kind", "--container-runtime-version", "containerd://2.1.3"),
		"detect k3s":                         detect("k3s-v3-server", "--container-runtime-version", "containerd://2.1.5-k3s1"),
		"detect eks-al2023":                  detect("eks-al2023-v3"),
		"detect bottlerocket (unsupported)":  detect("bottlerocket"),
		"detect unknown host (error)":        detect("unknown"),
		"add aks containerd 2":               add("aks-containerd2-v2.toml", "2"),
		"add version-only file containerd 1": add("rcm-version-only-v2.toml", "1"),
		"add talos containerd 1 (refused)":   add("talos-v3.toml", "1"),
		"add k0s containerd 2":               add("k0s-v3.toml", "2"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			wantOut, wantErr, wantCode := run(t, false, args...)
			gotOut, gotErr, gotCode := run(t, true, args...)
			if gotOut != wantOut || gotErr != wantErr || gotCode != wantCode {
				t.Errorf("arm64 under qemu: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s",
					gotCode, gotOut, gotErr, wantCode, wantOut, wantErr)
			}
			if wantOut == "" && wantErr == "" {
				t.Error("the command printed nothing")
			}
		})
	}
}

// TestWazeroShim runs the arm64 shim binary's one-shot commands under qemu (-info, -v: the same bytes as
// the amd64 build) and Wasm modules through the shim's run path (internal/wazerorun, what the shim calls
// for a container) built for arm64: a hand-assembled module and the Go test guest, compiled by wazero's
// arm64 backend and executed by qemu, with their output and exit codes. The shim's ttrpc server cannot
// run under qemu-user 7.2: it makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER, which qemu
// 7.2 refuses with EINVAL) and re-executes itself from `start`.
func TestWazeroShim(t *testing.T) {
	t.Parallel()
	build(t)
	qemu := testenv.QemuAarch64(t)
	for _, flag := range []string{"-info", "-v"} {
		host, err := exec.Command(binaries.shimHost, flag).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", binaries.shimHost, flag, err)
		}
		arm, err := exec.Command(qemu, binaries.shim, flag).Output()
		if err != nil {
			t.Fatalf("qemu %s %s: %v", binaries.shim, flag, err)
		}
		if !bytes.Equal(arm, host) || !bytes.Contains(arm, []byte("wazero")) && flag == "-info" {
			t.Errorf("shim %s under qemu: %q, want %q", flag, arm, host)
		}
	}

	dir := t.TempDir()
	guest, err := wazeroguest.BuildTo(dir)
	if err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny.wasm")
	if err := os.WriteFile(tiny, wazeroguest.Tiny("hello from arm64\n", 7), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stdout string
		exit   int
	}{
		{"tiny module", []string{tiny}, "hello from arm64\n", 7},
		{"go guest", []string{guest, "hello", "arm64"}, fmt.Sprintf("hello from wasm: argv=[%q \"hello\" \"arm64\"]\n", guest), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, qemu, append([]string{binaries.runwasm}, tc.args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if cmd.ProcessState == nil {
				t.Fatalf("run %v: %v", cmd.Args, err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.exit || stdout.String() != tc.stdout {
				t.Errorf("exit %d, stdout %q; want %d, %q\nstderr: %s", code, stdout.String(), tc.exit, tc.stdout, stderr.String())
			}
		})
	}
}
