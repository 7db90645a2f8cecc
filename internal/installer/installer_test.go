package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// node models a host for unit tests: real files under a temp root, and a containerd stand-in whose
// "loaded" configuration is what the config file held at its last restart. Faults are injected through
// its fields; the acceptance tests in test/installer run the real daemons.
type node struct {
	t       *testing.T
	files   DirFS
	profile distro.Profile

	binary    []byte // what the fetcher delivers
	fetchErr  error
	finishErr error // the fetched binary cannot be made durable
	verifyErr error
	hides     string // the CRI never reports this handler present
	breaks    string // a restart fails while the config contains this text

	fetches, restarts int
	prepares          int // Prepare calls (the restarter is a Preparer)
	down              bool
	loaded            map[string]bool // the handlers present at the last restart
	writeFails        string
	renameFails       string
	// notRunnable marks binary content the probe refuses (as a wrong-architecture binary); probed
	// lists the binaries probed.
	notRunnable string
	probed      []string
}

const handler = "wkt"

var spec = Spec{Shim: "wkt", Handler: handler, RuntimeType: "io.containerd.wkt.v2", SpecHash: "h1",
	Options: []containerdcfg.Option{{Key: "BinaryName", Value: "runc"}}}

func newNode(t *testing.T, mode distro.ConfigMode, fixture string) *node {
	t.Helper()
	n := &node{t: t, files: DirFS{Root: t.TempDir()}, binary: []byte("#!/bin/sh\necho shim v1\n")}
	n.profile = distro.Profile{Distro: "test", Config: distro.ConfigTarget{Path: "/etc/containerd/config.toml", Mode: mode},
		ShimDir: "/opt/wasmkube/bin", StateFile: "/opt/wasmkube/state.json", ContainerdMajor: 2}
	switch mode {
	case distro.ModeDropIn:
		n.profile.Config.Path, n.profile.Config.Version = "/etc/containerd/config.d", 3
	case distro.ModeTemplate:
		n.profile.Config.Path, n.profile.Config.Version = "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3
		n.profile.Config.Seed = "{{ template \"base\" . }}\n"
	}
	if fixture != "" {
		data, err := os.ReadFile(filepath.Join("testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.files.WriteFile(n.profile.Config.Path, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) installer() *Installer {
	return &Installer{Profile: n.profile, Host: Host{Files: faultyFiles{DirFS: n.files, n: n}, Fetcher: n, Restarter: n, CRI: n, Prober: n}}
}

// faultyFiles fails WriteFile for paths containing n.writeFails and Rename to n.renameFails.
type faultyFiles struct {
	DirFS
	n *node
}

func (f faultyFiles) Rename(from, to string) error {
	if f.n.renameFails != "" && to == f.n.renameFails {
		return errors.New("injected rename failure")
	}
	return f.DirFS.Rename(from, to)
}

func (f faultyFiles) WriteFile(p string, data []byte, perm fs.FileMode) error {
	if f.n.writeFails != "" && strings.Contains(p, f.n.writeFails) {
		return errors.New("injected write failure")
	}
	return f.DirFS.WriteFile(p, data, perm)
}

func (n *node) Fetch(_ context.Context, dest string) (Fetched, error) {
	n.fetches++
	if n.fetchErr != nil {
		return nil, n.fetchErr
	}
	f := filepath.Join(dest, "containerd-shim-wkt-v2")
	if err := os.WriteFile(f, n.binary, 0o755); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(n.binary)
	return fetched{n: n, art: Artifact{File: f, SHA256: hex.EncodeToString(sum[:]), Digest: "sha256:" + hex.EncodeToString(sum[:]), Platform: "linux/amd64"}}, nil
}

// fetched is what node.Fetch returns; Finish fails with n.finishErr.
type fetched struct {
	n   *node
	art Artifact
}

func (f fetched) Finish() (Artifact, error) {
	if f.n.finishErr != nil {
		return Artifact{}, f.n.finishErr
	}
	return f.art, nil
}

func (f fetched) Discard() { os.Remove(f.art.File) }

func (n *node) Prepare() error {
	n.prepares++
	return nil
}

// handlers are the handlers the containerd stand-in looks for in its config.
var handlers = []string{handler, "other", "third"}

func (n *node) Restart(context.Context) error {
	n.restarts++
	n.loaded = map[string]bool{}
	n.down = false
	for _, h := range handlers {
		data, exists, _ := readOptional(n.files, n.installer().configFile(h))
		present := exists
		if exists && n.profile.Config.Mode != distro.ModeDropIn {
			var err error
			if present, err = containerdcfg.Owned(data, h, n.installer().patchOptions()); err != nil {
				n.t.Fatalf("containerd stand-in cannot read the config: %v", err)
			}
		}
		n.loaded[h] = present
		n.down = n.down || n.breaks != "" && bytes.Contains(data, []byte(n.breaks))
	}
	if n.down {
		return errors.New("containerd exited during start")
	}
	return nil
}

func (n *node) WaitReady(_ context.Context, h string, present bool) error {
	switch {
	case n.verifyErr != nil:
		return n.verifyErr
	case n.down:
		return errors.New("runtime not ready")
	case present && h == n.hides:
		return fmt.Errorf("handler %s never appears", h)
	case n.loaded[h] != present:
		return fmt.Errorf("handler %s present=%t", h, n.loaded[h])
	}
	return nil
}

// Probe stands in for running the binary (ExecProber's own test runs real ones): it must be in place,
// and content containing n.notRunnable does not run.
func (n *node) Probe(_ context.Context, binary string) (string, error) {
	n.probed = append(n.probed, binary)
	data, err := n.files.ReadFile(binary)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %v", ErrNotRunnable, err)
	case n.notRunnable != "" && bytes.Contains(data, []byte(n.notRunnable)):
		return "", fmt.Errorf("%w: %s: exec format error", ErrNotRunnable, binary)
	}
	return "shim", nil
}

func (n *node) read(p string) []byte {
	n.t.Helper()
	data, err := n.files.ReadFile(p)
	if err != nil {
		n.t.Fatal(err)
	}
	return data
}

func (n *node) exists(p string) bool {
	_, err := n.files.Stat(p)
	return err == nil
}

func (n *node) state() *State {
	n.t.Helper()
	st, err := loadState(n.files, n.profile.StateFile)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

const binPath = "/opt/wasmkube/bin/containerd-shim-wkt-v2"

func check(t *testing.T, r installerapi.Result, want installerapi.Result) {
	t.Helper()
	got := fmt.Sprintf("success=%t changed=%t config=%t binary=%t restarted=%t rolledBack=%t reason=%s",
		r.Success, r.Changed, r.ConfigChanged, r.BinaryChanged, r.Restarted, r.RolledBack, r.Reason)
	exp := fmt.Sprintf("success=%t changed=%t config=%t binary=%t restarted=%t rolledBack=%t reason=%s",
		want.Success, want.Changed, want.ConfigChanged, want.BinaryChanged, want.Restarted, want.RolledBack, want.Reason)
	if got != exp {
		t.Errorf("result %s\nwant          %s\nerror: %s", got, exp, r.Error)
	}
}

var (
	freshInstall = installerapi.Result{Success: true, Changed: true, ConfigChanged: true, BinaryChanged: true, Restarted: true}
	noChange     = installerapi.Result{Success: true}
	fullRemoval  = installerapi.Result{Success: true, Changed: true, ConfigChanged: true, BinaryChanged: true, Restarted: true}
)

func TestInstallUninstallCycle(t *testing.T) {
	tests := []struct {
		mode    distro.ConfigMode
		fixture string
		major   int // containerd major version the profile reports (0: unknown)
	}{
		{distro.ModeInPlace, "config-v2.toml", 0},
		{distro.ModeInPlace, "config-v2.toml", 1},
		{distro.ModeInPlace, "config-v3.toml", 2},
		// containerd 1.x keeps its runc through wasmkube's copy of it; 2.x needs none.
		{distro.ModeInPlace, "config-v2-noruntimes.toml", 1},
		{distro.ModeInPlace, "config-v2-noruntimes.toml", 2},
		{distro.ModeTemplate, "", 0},
		{distro.ModeDropIn, "", 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%s-containerd%d", tt.mode, tt.fixture, tt.major), func(t *testing.T) {
			t.Parallel()
			n := newNode(t, tt.mode, tt.fixture)
			n.profile.ContainerdMajor = tt.major
			cfgFile := n.installer().configFile(handler)
			var before []byte
			if tt.fixture != "" {
				before = n.read(cfgFile)
			}
			in := n.installer()

			r := in.Install(context.Background(), spec)
			check(t, r, freshInstall)
			if r.BinaryPath != binPath || r.ConfigPath != cfgFile || r.BinarySHA256 == "" || r.Platform != "linux/amd64" {
				t.Errorf("result paths: %+v", r)
			}
			fi, err := n.files.Stat(binPath)
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("binary: %v %v", fi, err)
			}
			cfg := n.read(cfgFile)
			// The binary's absolute path on every containerd version (see doc.go).
			wantType := `"` + binPath + `"`
			if !bytes.Contains(bytes.ReplaceAll(cfg, []byte("'"), []byte(`"`)), []byte("runtime_type = "+wantType)) {
				t.Errorf("config lacks runtime_type %s:\n%s", wantType, cfg)
			}
			if e := n.state().Shims[handler]; e == nil || e.Phase != PhaseInstalled || e.Tx != nil || e.SpecHash != "h1" {
				t.Errorf("state entry: %+v", e)
			}

			// Same spec hash: nothing fetched, written or restarted.
			r = in.Install(context.Background(), spec)
			check(t, r, noChange)
			if n.fetches != 1 || n.restarts != 1 {
				t.Errorf("re-run fetched %d times and restarted %d times in total, want 1 and 1", n.fetches, n.restarts)
			}
			// No spec hash: fetched again, found identical, still nothing changes.
			noHash := spec
			noHash.SpecHash = ""
			check(t, in.Install(context.Background(), noHash), noChange)
			if n.fetches != 2 || n.restarts != 1 {
				t.Errorf("re-run without hash: %d fetches, %d restarts", n.fetches, n.restarts)
			}

			r = in.Uninstall(context.Background(), spec.Shim, handler, "")
			check(t, r, fullRemoval)
			if tt.fixture != "" {
				if after := n.read(cfgFile); !bytes.Equal(after, before) {
					t.Errorf("uninstall did not restore the config byte for byte:\n%s\nwant:\n%s", after, before)
				}
			} else if n.exists(cfgFile) {
				t.Errorf("uninstall left %s that wasmkube created", cfgFile)
			}
			for _, p := range []string{binPath, n.profile.StateFile, "/opt/wasmkube/backup/" + handler} {
				if n.exists(p) {
					t.Errorf("uninstall left %s", p)
				}
			}
			check(t, in.Uninstall(context.Background(), spec.Shim, handler, ""), noChange)
		})
	}
}

// TestInstallNeedsContainerdVersion: a version 2 file without runtimes is edited differently for
// containerd 1.x and 2.x, so with the generation unknown nothing is touched and the result names the flag.
func TestInstallNeedsContainerdVersion(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v2-noruntimes.toml")
	n.profile.ContainerdMajor = 0
	before := n.read(n.profile.Config.Path)
	r := n.installer().Install(context.Background(), spec)
	if r.Success || r.Reason != installerapi.ReasonContainerdVersionUnknown || !strings.Contains(r.Error, "pass --container-runtime-version") {
		t.Fatalf("got success=%t reason=%s error=%q, want %s naming --container-runtime-version", r.Success, r.Reason, r.Error, installerapi.ReasonContainerdVersionUnknown)
	}
	if after := n.read(n.profile.Config.Path); !bytes.Equal(after, before) || n.restarts != 0 || n.exists(n.profile.StateFile) {
		t.Errorf("refused install changed the node: restarts %d, config:\n%s", n.restarts, after)
	}
}

func TestInstallFailureRollsBack(t *testing.T) {
	tests := []struct {
		name     string
		inject   func(n *node)
		reason   string
		restarts int
		rolled   bool
	}{
		{"fetch fails", func(n *node) { n.fetchErr = errors.New("registry down") }, installerapi.ReasonFetchFailed, 0, false},
		{"no platform", func(n *node) { n.fetchErr = fmt.Errorf("index: %w", ErrUnsupportedPlatform) }, installerapi.ReasonUnsupportedPlatform, 0, false},
		// The fetched binary is placed only after the configuration is written, so nothing changed.
		{"config write fails", func(n *node) { n.writeFails = "config.toml" }, installerapi.ReasonConfigWriteFailed, 0, false},
		// The binary's durable tail runs during the restart: its failure rolls back config and restart.
		{"binary cannot be made durable", func(n *node) { n.finishErr = errors.New("fsync: input/output error") }, installerapi.ReasonBinaryFailed, 2, true},
		{"binary cannot be placed", func(n *node) { n.renameFails = binPath }, installerapi.ReasonBinaryFailed, 2, true},
		{"containerd does not start", func(n *node) { n.breaks = "BreakMe" }, installerapi.ReasonRestartFailed, 2, true},
		// The binary is probed in place during the restart: one that does not run rolls back.
		{"binary does not run", func(n *node) { n.notRunnable = "shim v1" }, installerapi.ReasonShimNotRunnable, 2, true},
		{"handler never appears", func(n *node) { n.verifyErr = errors.New("handler missing") }, installerapi.ReasonRollbackFailed, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, distro.ModeInPlace, "config-v2.toml")
			before := n.read(n.profile.Config.Path)
			tt.inject(n)
			s := spec
			s.Options = append(s.Options, containerdcfg.Option{Key: "ConfigPath", Value: "BreakMe"})
			if n.breaks == "" {
				s.Options = spec.Options
			}
			r := n.installer().Install(context.Background(), s)
			if r.Success || r.Reason != tt.reason || r.RolledBack != tt.rolled || n.restarts != tt.restarts {
				t.Fatalf("got success=%t reason=%s rolledBack=%t restarts=%d (%s), want reason=%s rolledBack=%t restarts=%d",
					r.Success, r.Reason, r.RolledBack, n.restarts, r.Error, tt.reason, tt.rolled, tt.restarts)
			}
			if tt.reason == installerapi.ReasonRollbackFailed {
				// The CRI never confirms anything, so the rollback cannot verify either: the state
				// keeps the open transaction for the next run, and the config is the old one.
				if e := n.state().Shims[handler]; e == nil || e.Tx == nil {
					t.Errorf("state after failed rollback: %+v", e)
				}
			} else if n.exists(n.profile.StateFile) || n.exists(binPath) {
				t.Errorf("rollback left state file or binary behind")
			}
			if after := n.read(n.profile.Config.Path); !bytes.Equal(after, before) {
				t.Errorf("config not restored:\n%s", after)
			}
			if !n.down && n.loaded[handler] {
				t.Error("containerd still has the handler loaded after rollback")
			}
		})
	}
}

func TestUpgradeFailureRestoresPreviousBinary(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	in := n.installer()
	check(t, in.Install(context.Background(), spec), freshInstall)
	old := n.read(binPath)
	cfg := n.read(n.profile.Config.Path)

	// A new binary under a new spec: no config change, so no restart.
	n.binary = []byte("#!/bin/sh\necho shim v2\n")
	s2 := spec
	s2.SpecHash = "h2"
	n.verifyErr = errors.New("CRI unavailable")
	r := in.Install(context.Background(), s2)
	if r.Success || r.Reason != installerapi.ReasonVerifyFailed || !r.RolledBack || n.restarts != 1 {
		t.Fatalf("upgrade with failing verify: %+v restarts=%d", r, n.restarts)
	}
	if !bytes.Equal(n.read(binPath), old) || !bytes.Equal(n.read(n.profile.Config.Path), cfg) {
		t.Error("previous binary or config not restored")
	}
	if e := n.state().Shims[handler]; e == nil || e.SpecHash != "h1" || e.Phase != PhaseInstalled || e.Tx != nil {
		t.Errorf("previous state entry not restored: %+v", e)
	}

	n.verifyErr = nil
	check(t, in.Install(context.Background(), s2), installerapi.Result{Success: true, Changed: true, BinaryChanged: true})
	if !bytes.Equal(n.read(binPath), n.binary) || n.restarts != 1 {
		t.Errorf("upgrade: binary not replaced or containerd restarted (%d)", n.restarts)
	}
	if entries, _ := os.ReadDir(n.hostPath("/opt/wasmkube/backup/" + handler)); len(entries) != 0 {
		t.Errorf("backups after upgrade: %v, want none", entries)
	}
}

func TestConfigLeftUntouched(t *testing.T) {
	tests := []struct{ fixture, reason string }{
		{"unparseable.toml", installerapi.ReasonConfigUnparseable},
		{"version5.toml", installerapi.ReasonConfigUnknownVersion},
		{"", installerapi.ReasonConfigUnparseable}, // in-place config missing
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, distro.ModeInPlace, tt.fixture)
			var before []byte
			if tt.fixture != "" {
				before = n.read(n.profile.Config.Path)
			}
			r := n.installer().Install(context.Background(), spec)
			if r.Success || r.Reason != tt.reason || r.Changed || n.fetches != 0 || n.restarts != 0 {
				t.Fatalf("result %+v fetches=%d restarts=%d", r, n.fetches, n.restarts)
			}
			if !strings.Contains(r.Error, n.profile.Config.Path) {
				t.Errorf("error does not name the file: %s", r.Error)
			}
			if tt.fixture != "" && !bytes.Equal(n.read(n.profile.Config.Path), before) {
				t.Error("config modified")
			}
			entries, _ := os.ReadDir(n.hostPath("/opt"))
			if len(entries) != 0 {
				t.Errorf("install of a bad config created %v under /opt", entries)
			}
			_, err := n.installer().DryRun(spec)
			if reasonOf(err) != tt.reason {
				t.Errorf("dry run: %v", err)
			}
		})
	}
}

// crash aborts a run after a step, like SIGKILL (the acceptance tests use a real SIGKILL).
type crash struct{ step string }

func TestCrashAfterEachStepConverges(t *testing.T) {
	steps := []string{StepPlan, StepIntent, StepFetch, StepBinary, StepConfig, StepRestart, StepVerify, StepCommit}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, distro.ModeInPlace, "config-v2.toml")
			before := n.read(n.profile.Config.Path)
			in := n.installer()
			in.Host.AfterStep = func(s string) {
				if s == step {
					panic(crash{s})
				}
			}
			func() {
				defer func() {
					if v := recover(); v != (crash{step}) {
						t.Fatalf("run did not stop after %s: %v", step, v)
					}
				}()
				in.Install(context.Background(), spec)
			}()
			restartsBefore := n.restarts
			in.Host.AfterStep = nil
			r := in.Install(context.Background(), spec)
			if !r.Success {
				t.Fatalf("re-run after crash at %s: %+v", step, r)
			}
			if restartsBefore == 1 && r.Restarted {
				t.Errorf("re-run restarted containerd again after crash at %s", step)
			}
			if n.restarts != 1 || !n.loaded[handler] {
				t.Errorf("after crash at %s: %d restarts in total, handler loaded=%t", step, n.restarts, n.loaded[handler])
			}
			if e := n.state().Shims[handler]; e == nil || e.Phase != PhaseInstalled || e.Tx != nil {
				t.Errorf("state: %+v", e)
			}
			check(t, in.Uninstall(context.Background(), spec.Shim, handler, ""), fullRemoval)
			if !bytes.Equal(n.read(n.profile.Config.Path), before) {
				t.Error("config not restored after crash + re-run + uninstall")
			}
		})
	}
	uninstallSteps := []string{StepIntent, StepConfig, StepRestart, StepVerify, StepBinary}
	for _, step := range uninstallSteps {
		t.Run("uninstall-"+step, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, distro.ModeInPlace, "config-v3.toml")
			before := n.read(n.profile.Config.Path)
			in := n.installer()
			check(t, in.Install(context.Background(), spec), freshInstall)
			in.Host.AfterStep = func(s string) {
				if s == step {
					panic(crash{s})
				}
			}
			func() {
				defer func() { recover() }()
				in.Uninstall(context.Background(), spec.Shim, handler, "")
			}()
			in.Host.AfterStep = nil
			r := in.Uninstall(context.Background(), spec.Shim, handler, "")
			if !r.Success || n.restarts != 2 || n.loaded[handler] {
				t.Fatalf("re-run after crash at %s: %+v restarts=%d loaded=%t", step, r, n.restarts, n.loaded[handler])
			}
			if !bytes.Equal(n.read(n.profile.Config.Path), before) || n.exists(binPath) || n.exists(n.profile.StateFile) {
				t.Error("uninstall did not converge")
			}
		})
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v2.toml")
	before := n.read(n.profile.Config.Path)
	out, err := n.installer().DryRun(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+  runtime_type = \"" + binPath + "\"", "restart:         yes", binPath, "--- a/etc/containerd/config.toml"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if !bytes.Equal(n.read(n.profile.Config.Path), before) || n.exists("/opt/wasmkube") || n.fetches+n.restarts != 0 {
		t.Error("dry run changed the host")
	}
}

func TestBinaryName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ handler, runtimeType, want string }{
		{"spin", "io.containerd.spin.v2", "containerd-shim-spin-v2"},
		{"wazero", "io.containerd.wazero.v1", "containerd-shim-wazero-v1"},
		// Two Shims with one runtime type get two binaries.
		{"spin-fast", "io.containerd.spin.v2", "containerd-shim-spin-fast-v2"},
		{"spin", "spin.v2", ""},
		{"spin", "io.containerd.a/b.v2", ""},
		{"spin", "io.containerd.spin.v-2", ""}, // a '-' in the version would make names ambiguous
		{"a/b", "io.containerd.spin.v2", ""},
		{"spin", "", ""},
	} {
		got, err := BinaryName(c.handler, c.runtimeType)
		if got != c.want || (c.want == "") != errors.Is(err, ErrInvalid) {
			t.Errorf("BinaryName(%q, %q) = %q, %v; want %q", c.handler, c.runtimeType, got, err, c.want)
		}
	}
}

func TestCorruptStateFileIsKept(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v2.toml")
	if err := n.files.WriteFile(n.profile.StateFile, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := n.installer().Install(context.Background(), spec)
	if r.Reason != installerapi.ReasonStateFailed || !strings.Contains(r.Error, path.Clean(n.profile.StateFile)) {
		t.Fatalf("result: %+v", r)
	}
	if got := n.read(n.profile.StateFile); string(got) != "{not json" {
		t.Errorf("state file rewritten: %q", got)
	}
}

// Uninstall removes what an install killed while fetching left in the fetch directory (a real
// SIGKILL skips the deferred cleanup that a panic in the unit tests would run).
func TestUninstallRemovesFetchLeftovers(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	in := n.installer()
	check(t, in.Install(context.Background(), spec), freshInstall)
	leftover := path.Join(in.fetchDir(handler), ".shimsource-containerd-shim-wkt-v2-1.tmp")
	if err := n.files.WriteFile(leftover, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	check(t, in.Uninstall(context.Background(), spec.Shim, handler, ""), fullRemoval)
	if n.exists(in.fetchDir(handler)) {
		t.Error("uninstall left the fetch directory behind")
	}
}

// The restarter is prepared (beside the fetch) only when a restart is expected.
func TestRestartPreparedOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	in := n.installer()
	check(t, in.Install(context.Background(), spec), freshInstall)
	if n.prepares != 1 || n.restarts != 1 {
		t.Errorf("fresh install: %d prepares, %d restarts; want 1, 1", n.prepares, n.restarts)
	}
	// A new binary under a new spec hash: no configuration change, no restart, nothing to prepare.
	n.binary = []byte("#!/bin/sh\necho shim v2\n")
	s2 := spec
	s2.SpecHash = "h2"
	check(t, in.Install(context.Background(), s2), installerapi.Result{Success: true, Changed: true, BinaryChanged: true})
	if n.prepares != 1 || n.restarts != 1 {
		t.Errorf("binary-only upgrade: %d prepares, %d restarts; want 1, 1", n.prepares, n.restarts)
	}
}

// A binary that stops running after the install (replaced, corrupted) fails the next run and verify;
// neither changes anything, and the probe sees the installed binary each time.
func TestInstalledBinaryProbed(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	in := n.installer()
	r := in.Install(context.Background(), spec)
	check(t, r, freshInstall)
	if r.ShimVersion != "shim" {
		t.Errorf("shimVersion %q, want what the probe printed", r.ShimVersion)
	}
	if v := in.Verify(context.Background(), handler, true); !v.Success || v.BinaryPath != binPath {
		t.Fatalf("verify: %+v", v)
	}
	cfg := n.read(n.profile.Config.Path)

	n.notRunnable = "shim v1"
	check(t, in.Install(context.Background(), spec), installerapi.Result{Reason: installerapi.ReasonShimNotRunnable})
	if v := in.Verify(context.Background(), handler, true); v.Success || v.Reason != installerapi.ReasonShimNotRunnable {
		t.Errorf("verify of a binary that does not run: %+v", v)
	}
	if n.restarts != 1 || !bytes.Equal(n.read(n.profile.Config.Path), cfg) {
		t.Errorf("a failed probe changed the node: %d restarts", n.restarts)
	}
	// Verify of an absent handler probes nothing.
	before := len(n.probed)
	in.Verify(context.Background(), "other", false)
	if want := []string{binPath, binPath, binPath, binPath}; len(n.probed) != before || !slices.Equal(n.probed, want) {
		t.Errorf("probed %v, want %v", n.probed, want)
	}
}

// hostPath is where a host path is under the node's root.
func (n *node) hostPath(p string) string {
	n.t.Helper()
	full, err := n.files.HostPath(p)
	if err != nil {
		n.t.Fatal(err)
	}
	return full
}
