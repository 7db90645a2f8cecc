package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

// nodeInstaller is the binary under test, built once by TestMain.
var nodeInstaller string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wk-installer-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodeInstaller = filepath.Join(dir, "node-installer")
	// Built as the installer image builds it (images.Compile): static, trimmed, stripped. A cgo build
	// would add the dynamic loader's start-up to every run the benchmark times.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+images.LDFlags, "-o", nodeInstaller, "github.com/wasmkube/wasmkube/cmd/node-installer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build node-installer:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	shim        = "wasmkubetest"
	runtimeType = "io.containerd.wasmkubetest.v2"
	binaryName  = "containerd-shim-wasmkubetest-v2"
	stateFile   = "/opt/wasmkube/state.json"
	configPath  = "/etc/containerd/config.toml"
)

// node is a temporary host root with a supervised real containerd whose config is the host's
// /etc/containerd/config.toml, and a builtin dir holding the runc v2 shim of that containerd under the
// builtin name "wazero" (the shim a pod will run through the new handler).
type node struct {
	t        testing.TB
	root     string
	d        *containerdtest.Daemon
	builtins string
	shim     []byte // content of the shim binary the builtin source delivers
	// shimDir is the installer's --shim-dir: a directory in the host root that this machine also shows
	// at the same path (through a symlink), so the path the installer writes into containerd's config
	// names the binary for the test's containerd, which runs in this machine's root, not the host root.
	shimDir string
	binPath string
}

func newNode(t testing.TB, v containerdtest.Version, configVersion int) *node {
	t.Helper()
	return newNodeWithConfig(t, v, func(p containerdtest.Paths) []byte { return containerdtest.Config(configVersion, p) })
}

// newNodeWithConfig is newNode with the daemon's config made by config from its private paths.
func newNodeWithConfig(t testing.TB, v containerdtest.Version, config func(containerdtest.Paths) []byte) *node {
	t.Helper()
	root := hostRoot(t)
	paths := containerdtest.NewPaths(t, root)
	d := containerdtest.Start(t, containerdtest.Options{Version: v, HostRoot: root, Paths: &paths,
		Config: config(paths), Supervise: true})
	// The harness links the node's standard CRI socket path below the host root to the daemon's socket.
	src := "/usr/bin/containerd-shim-runc-v2"
	if v == containerdtest.V2 {
		src = filepath.Join(testenv.Containerd2Dir(t), "containerd-shim-runc-v2")
	}
	n := &node{t: t, root: root, d: d, builtins: t.TempDir()}
	var err error
	if n.shimDir, err = os.MkdirTemp("/tmp", "wks"); err != nil {
		t.Fatal(err)
	}
	// The directory itself lives in the host root; this machine's path is a link to it.
	inRoot := filepath.Join(root, n.shimDir)
	if err := os.MkdirAll(inRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(n.shimDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(inRoot, n.shimDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(n.shimDir) })
	n.binPath = filepath.Join(n.shimDir, binaryName)
	n.shim = n.copyFile(src, filepath.Join(n.builtins, "containerd-shim-wazero-v1"))
	return n
}

// hostRoot makes a short temporary host root (socket paths below it must stay < 108 bytes).
func hostRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp("/tmp", "wkh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return root
}

func (n *node) copyFile(from, to string) []byte {
	n.t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		n.t.Fatal(err)
	}
	return data
}

// read returns a host file's content (nil if it does not exist).
func (n *node) read(hostPath string) []byte {
	n.t.Helper()
	data, err := os.ReadFile(filepath.Join(n.root, hostPath))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		n.t.Fatal(err)
	}
	return data
}

func (n *node) exists(hostPath string) bool {
	_, err := os.Lstat(filepath.Join(n.root, hostPath))
	return err == nil
}

// run is one node-installer run.
type run struct {
	result installerapi.Result
	stderr string
	err    error // the process's exit error
	killed bool  // ended by SIGKILL
}

// installer runs the binary with the host-root flags, the test's extra env and args.
func (n *node) installer(env []string, args ...string) run {
	n.t.Helper()
	// The test's containerd runs in this machine's root, not in the host root, so the shim binary is
	// probed where containerd would run it (--exec-root=/); the shim directory is visible there too.
	args = append(args, "--host-root="+n.root, "--exec-root=/", "--result-file="+filepath.Join(n.root, "termination-log"),
		"--proc-root=/proc", "--timeout=3m")
	return runInstaller(n.t, env, args...)
}

func runInstaller(t testing.TB, env []string, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeInstaller, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stderr: stderr.String(), err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
			return r
		}
	}
	if stdout.Len() > 0 {
		if jerr := json.Unmarshal(stdout.Bytes(), &r.result); jerr != nil {
			t.Fatalf("node-installer %s: stdout is not one JSON result: %v\n%s\nstderr: %s", args[0], jerr, stdout.String(), r.stderr)
		}
		if stdout.Len() > installerapi.MaxBytes+1 {
			t.Errorf("result is %d bytes, more than a termination message holds", stdout.Len())
		}
	}
	if ok := r.result.Success; stdout.Len() > 0 && (err == nil) != ok && !slices.Contains(args, "--dry-run") {
		t.Errorf("exit status %v does not match success=%t reason=%s", err, r.result.Success, r.result.Reason)
	}
	return r
}

// newCmd is a node-installer command with no time limit of its own (for quick, local commands).
func newCmd(args ...string) *exec.Cmd { return exec.Command(nodeInstaller, args...) }

func (n *node) install(env []string, extra ...string) run {
	n.t.Helper()
	args := append([]string{"install", "--shim-name=" + shim, "--runtime-type=" + runtimeType,
		"--source-builtin=wazero", "--builtin-dir=" + n.builtins, "--spec-hash=h1", "--restart=signal", "--shim-dir=" + n.shimDir}, extra...)
	return n.installer(env, args...)
}

func (n *node) uninstall(env []string) run {
	n.t.Helper()
	return n.installer(env, "uninstall", "--shim-name="+shim, "--restart=signal", "--shim-dir="+n.shimDir)
}

func (r run) mustSucceed(t testing.TB, what string) installerapi.Result {
	t.Helper()
	if r.err != nil || !r.result.Success {
		t.Fatalf("%s failed: %v\nresult: %+v\nstderr: %s", what, r.err, r.result, r.stderr)
	}
	return r.result
}

// termination returns the result the run wrote to the termination-message file.
func (n *node) termination() installerapi.Result {
	n.t.Helper()
	r, err := installerapi.Decode(n.read("/termination-log"))
	if err != nil {
		n.t.Fatal(err)
	}
	return r
}

// logs is the daemon's log for failure messages.
func (n *node) logs() string {
	l := n.d.Logs()
	if len(l) > 4000 {
		l = l[len(l)-4000:]
	}
	return l
}
