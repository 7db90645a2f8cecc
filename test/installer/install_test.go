package installer

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

var daemons = []struct {
	version       containerdtest.Version
	configVersion int
}{
	{containerdtest.V1, 2},
	{containerdtest.V2, 3},
	{containerdtest.V2, 4},
}

// Install registers the handler and a pod runs through it; a second install
// changes nothing and does not restart containerd; uninstall restores the config byte for byte.
func TestInstallRunPodRerunUninstall(t *testing.T) {
	for _, tt := range daemons {
		t.Run(fmt.Sprintf("%s-config-v%d", tt.version, tt.configVersion), func(t *testing.T) {
			t.Parallel()
			n := newNode(t, tt.version, tt.configVersion)
			before := n.read(configPath)

			r := n.install(nil).mustSucceed(t, "install")
			if !r.Changed || !r.ConfigChanged || !r.BinaryChanged || !r.Restarted || r.ConfigVersion != tt.configVersion ||
				r.BinaryPath != n.binPath || r.ConfigPath != configPath || r.Distro == "" || r.SpecHash != "h1" {
				t.Errorf("install result: %+v", r)
			}
			if got := n.termination(); got.BinarySHA256 != r.BinarySHA256 || !got.Success {
				t.Errorf("termination message %+v differs from stdout %+v", got, r)
			}
			if !bytes.Equal(n.read(n.binPath), n.shim) {
				t.Fatal("installed binary differs from the source")
			}
			// The probe ran the installed runc shim, which printed its name and version for -v.
			if !strings.Contains(r.ShimVersion, binaryName+": Version: ") {
				t.Errorf("shimVersion %q, want the runc shim's -v output", r.ShimVersion)
			}
			cfg := string(n.read(configPath))
			if tt.version == containerdtest.V1 && !strings.Contains(cfg, `runtime_type = "`+n.binPath+`"`) {
				t.Errorf("containerd 1.6 config must name the binary's absolute path as runtime_type:\n%s", cfg)
			}
			if n.d.Restarts() != 1 {
				t.Errorf("containerd restarted %d times, want 1", n.d.Restarts())
			}
			n.d.WaitReady(shim, true)
			pod := n.d.RunPod("through-new-handler", shim)
			if err := n.d.PodRunning(pod); err != nil {
				t.Fatalf("pod through handler %s: %v\n%s", shim, err, n.logs())
			}

			r = n.install(nil).mustSucceed(t, "second install")
			if r.Changed || r.ConfigChanged || r.BinaryChanged || r.Restarted {
				t.Errorf("second install changed something: %+v", r)
			}
			if n.d.Restarts() != 1 {
				t.Errorf("second install restarted containerd (%d restarts)", n.d.Restarts())
			}
			// Without the spec hash the source is fetched again, found identical, and still nothing changes.
			r = n.installer(nil, "install", "--shim-name="+shim, "--runtime-type="+runtimeType,
				"--source-builtin=wazero", "--builtin-dir="+n.builtins, "--restart=signal", "--shim-dir="+n.shimDir).mustSucceed(t, "install without spec hash")
			if r.Changed || n.d.Restarts() != 1 {
				t.Errorf("install without spec hash changed something: %+v, %d restarts", r, n.d.Restarts())
			}
			n.installer(nil, "verify", "--handler="+shim).mustSucceed(t, "verify")

			r = n.uninstall(nil).mustSucceed(t, "uninstall")
			if !r.ConfigChanged || !r.Restarted || !r.BinaryChanged {
				t.Errorf("uninstall result: %+v", r)
			}
			if after := n.read(configPath); !bytes.Equal(after, before) {
				t.Errorf("uninstall did not restore the config byte for byte:\n%s\nwant:\n%s", after, before)
			}
			for _, p := range []string{n.binPath, stateFile, "/opt/wasmkube/backup/" + shim} {
				if n.exists(p) {
					t.Errorf("uninstall left %s", p)
				}
			}
			n.installer(nil, "verify", "--handler="+shim, "--absent").mustSucceed(t, "verify --absent")
			if r := n.uninstall(nil).mustSucceed(t, "second uninstall"); r.Changed {
				t.Errorf("second uninstall changed something: %+v", r)
			}
		})
	}
}

// On a containerd 1.x node, a config that defines no runtimes (Debian's stock file does not)
// keeps containerd's built-in runc: the installer, told the node's containerd version, writes 1.x's
// default runtime beside the handler, and 1.6 then lists both. Without the version it refuses, names the
// flag and touches nothing. Uninstall restores the file byte for byte.
func TestInstallKeepsRuncOnContainerd1(t *testing.T) {
	t.Parallel()
	n := newNodeWithConfig(t, containerdtest.V1, func(p containerdtest.Paths) []byte {
		cfg := string(containerdtest.Config(2, p))
		start := strings.Index(cfg, "      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]")
		end := strings.Index(cfg, "  [plugins.\"io.containerd.nri.v1.nri\"]")
		return []byte(cfg[:start] + cfg[end:])
	})
	before := n.read(configPath)
	if st := n.d.WaitReady("runc", true); !st.HasHandler("runc") {
		t.Fatalf("containerd 1.6 without runtimes in its config lacks its built-in runc: %s", st)
	}

	r := n.install(nil)
	if r.err == nil || r.result.Reason != installerapi.ReasonContainerdVersionUnknown || !strings.Contains(r.result.Error, "--container-runtime-version") {
		t.Fatalf("install without the containerd version: want reason %s naming --container-runtime-version, got %v %+v", installerapi.ReasonContainerdVersionUnknown, r.err, r.result)
	}
	if after := n.read(configPath); !bytes.Equal(after, before) || n.d.Restarts() != 0 {
		t.Fatalf("refused install changed the node (%d restarts):\n%s", n.d.Restarts(), after)
	}

	n.install(nil, "--container-runtime-version=containerd://1.6.20").mustSucceed(t, "install")
	if st := n.d.WaitReady(shim, true); !st.HasHandler("runc") {
		t.Errorf("containerd 1.6 lost runc after the install: %s", st)
	}
	n.uninstall(nil).mustSucceed(t, "uninstall")
	if after := n.read(configPath); !bytes.Equal(after, before) {
		t.Errorf("uninstall did not restore the config byte for byte:\n%s\nwant:\n%s", after, before)
	}
}

// On a host whose containerd configuration the OS renders itself (Bottlerocket's settings API),
// install changes nothing and reports the node unsupported with the reason and the route the OS offers
// instead. It exits 3, a failure a retry cannot fix, which the Job's podFailurePolicy does
// not retry.
func TestInstallOnUnsupportedHost(t *testing.T) {
	t.Parallel()
	root := hostRoot(t)
	if err := os.CopyFS(root, os.DirFS("../../pkg/distro/testdata/hosts/bottlerocket")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	builtins := t.TempDir()
	if err := os.WriteFile(filepath.Join(builtins, "containerd-shim-wazero-v1"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runInstaller(t, nil, "install", "--host-root="+root, "--result-file=", "--shim-name=wazero", "--runtime-type=io.containerd.wazero.v1",
		"--source-builtin=wazero", "--builtin-dir="+builtins, "--container-runtime-version=containerd://1.7.27")
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != installerapi.ExitPermanent || r.result.Success || r.result.Reason != installerapi.ReasonUnsupportedHost ||
		r.result.Distro != "bottlerocket" || !strings.Contains(r.result.Error, "settings API") || !strings.Contains(r.result.Error, "variant") || r.result.Changed {
		t.Fatalf("want exit 3 with an unchanged, unsupported bottlerocket result naming the settings API and the override; got %v %+v\n%s", r.err, r.result, r.stderr)
	}
	if !strings.Contains(r.stderr, "install failed (UnsupportedHost)") {
		t.Errorf("stderr does not say the node is unsupported: %s", r.stderr)
	}
	if after := snapshot(t, root); after != before {
		t.Error("install changed the unsupported host")
	}
}

// A config containerd cannot use triggers a rollback that leaves a healthy containerd
// with the old config, and the result says why.
//
// No runtime option breaks containerd's start (1.6 and 2.4.2 keep options as a free-form map and decode
// them only when a sandbox starts, or, on 2.x, in a logged feature probe), so the faults are ones real
// containerd produces: 1.6 silently ignores a version-3 config's runtimes, so the handler never
// appears; 2.4.2 under --restart none (k0s style) never reloads the file.
func TestRollback(t *testing.T) {
	tests := []struct {
		name          string
		version       containerdtest.Version
		configVersion int
		restart       string
		restarts      int
		// runsPods: the daemon's own config works for pods (1.6 ignores a version-3 file's CRI
		// settings altogether, including the local pause image, so it could not run one before either).
		runsPods bool
	}{
		{"containerd1-ignores-v3-config", containerdtest.V1, 3, "signal", 2, false},
		{"containerd2-never-reloads", containerdtest.V2, 4, "none", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, tt.version, tt.configVersion)
			before := n.read(configPath)
			r := n.install(nil, "--restart="+tt.restart, "--verify-timeout=5s")
			if r.err == nil || r.result.Success || r.result.Reason != installerapi.ReasonVerifyFailed || !r.result.RolledBack {
				t.Fatalf("want a failed, rolled back install with reason %s; got %v %+v\n%s", installerapi.ReasonVerifyFailed, r.err, r.result, r.stderr)
			}
			if !strings.Contains(r.result.Error, shim) {
				t.Errorf("error does not say which handler: %s", r.result.Error)
			}
			if after := n.read(configPath); !bytes.Equal(after, before) {
				t.Errorf("config not restored:\n%s", after)
			}
			for _, p := range []string{n.binPath, stateFile} {
				if n.exists(p) {
					t.Errorf("rollback left %s", p)
				}
			}
			if n.d.Restarts() != tt.restarts {
				t.Errorf("containerd restarted %d times, want %d", n.d.Restarts(), tt.restarts)
			}
			n.d.WaitReady(shim, false)
			if tt.runsPods {
				if err := n.d.PodRunning(n.d.RunPod("after-rollback", "")); err != nil {
					t.Errorf("containerd unhealthy after rollback: %v", err)
				}
			}
		})
	}
}

// A shim binary that cannot run on the node (here: built for another architecture) is caught
// by the probe after the install, rolled back, and reported as a permanent failure (exit 3). Without
// the probe it would pass: containerd loads the config and the CRI lists the handler either way, and
// only a pod start would fail (TestInstallRunPodRerunUninstall is the positive control with the same
// binary unpatched).
func TestShimThatDoesNotRunRolledBack(t *testing.T) {
	t.Parallel()
	n := newNode(t, containerdtest.V2, 3)
	before := n.read(configPath)
	other := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		other = elf.EM_X86_64
	}
	f, err := elf.NewFile(bytes.NewReader(n.shim))
	if err != nil {
		t.Fatal(err)
	}
	foreign := bytes.Clone(n.shim)
	f.ByteOrder.PutUint16(foreign[18:20], uint16(other)) // e_machine
	if err := os.WriteFile(filepath.Join(n.builtins, "containerd-shim-wazero-v1"), foreign, 0o755); err != nil {
		t.Fatal(err)
	}

	r := n.install(nil)
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != installerapi.ExitPermanent {
		t.Errorf("exit %v, want exit status %d", r.err, installerapi.ExitPermanent)
	}
	if r.result.Success || r.result.Reason != installerapi.ReasonShimNotRunnable || !r.result.RolledBack ||
		!strings.Contains(r.result.Error, "exec format error: built for "+goArch(other)) {
		t.Fatalf("want a rolled back install failing with %s (built for %s); got %+v\n%s", installerapi.ReasonShimNotRunnable, goArch(other), r.result, r.stderr)
	}
	if after := n.read(configPath); !bytes.Equal(after, before) {
		t.Errorf("config not restored:\n%s", after)
	}
	for _, p := range []string{n.binPath, stateFile} {
		if n.exists(p) {
			t.Errorf("rollback left %s", p)
		}
	}
	if n.d.Restarts() != 2 {
		t.Errorf("containerd restarted %d times, want 2 (install, rollback)", n.d.Restarts())
	}
	n.d.WaitReady(shim, false)
}

func goArch(m elf.Machine) string {
	if m == elf.EM_AARCH64 {
		return "arm64"
	}
	return "amd64"
}

// An unparseable or unknown-version config is left untouched with a clear error.
func TestBadConfigLeftUntouched(t *testing.T) {
	tests := []struct{ config, reason, says string }{
		{"version = 2\n[plugins\n", installerapi.ReasonConfigUnparseable, "not valid toml"},
		{"version = 5\n[plugins]\n", installerapi.ReasonConfigUnknownVersion, "version 5"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			t.Parallel()
			root := hostRoot(t)
			if err := os.MkdirAll(root+"/etc/containerd", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(root+configPath, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			builtins := t.TempDir()
			if err := os.WriteFile(builtins+"/containerd-shim-wazero-v1", []byte("binary"), 0o755); err != nil {
				t.Fatal(err)
			}
			r := runInstaller(t, nil, "install", "--host-root="+root, "--result-file=", "--shim-name="+shim,
				"--runtime-type="+runtimeType, "--source-builtin=wazero", "--builtin-dir="+builtins, "--restart=none")
			if r.err == nil || r.result.Reason != tt.reason || r.result.Changed {
				t.Fatalf("got %v %+v", r.err, r.result)
			}
			if !strings.Contains(r.result.Error, configPath) || !strings.Contains(strings.ToLower(r.result.Error), tt.says) ||
				!strings.Contains(r.stderr, tt.reason) {
				t.Errorf("error is not clear: %q (stderr %q)", r.result.Error, r.stderr)
			}
			fi, err := os.Stat(root + configPath)
			if got, _ := os.ReadFile(root + configPath); string(got) != tt.config || err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("config touched: %q", got)
			}
			if _, err := os.Stat(root + "/opt"); err == nil {
				t.Error("install created /opt on a host whose config it refused")
			}
		})
	}
}
