package installer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// Several Shims on one node. The acceptance test with real daemons and random sequences is
// test/installer's TestManyShimsRandomized; these are the single scenarios, each with its fault.

// other is a second Shim with the same runtime type as spec.
var other = Spec{Shim: "other", Handler: "other", RuntimeType: spec.RuntimeType, SpecHash: "o1",
	Options: []containerdcfg.Option{{Key: "Args", Value: []string{"x", "y"}}}}

const otherBin = "/opt/wasmkube/bin/containerd-shim-other-v2"

// install runs an install and fails the test unless it succeeds.
func (n *node) install(s Spec) installerapi.Result {
	n.t.Helper()
	r := n.installer().Install(context.Background(), s)
	if !r.Success {
		n.t.Fatalf("install %s: %s: %s", s.Shim, r.Reason, r.Error)
	}
	return r
}

func (n *node) uninstall(s Spec) installerapi.Result {
	n.t.Helper()
	r := n.installer().Uninstall(context.Background(), s.Shim, s.Handler, "")
	if !r.Success {
		n.t.Fatalf("uninstall %s: %s: %s", s.Shim, r.Reason, r.Error)
	}
	return r
}

// The basic many-Shims scenario: install A, install B, re-install A with a new spec, uninstall A.
// B's block, binary and state entry stay, and so does a person's edit; uninstalling B then gives the
// original file back (plus the person's edit, which is theirs).
func TestUninstallKeepsOtherShims(t *testing.T) {
	for _, fixture := range []string{"config-v2.toml", "config-v3.toml"} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, distro.ModeInPlace, fixture)
			orig := n.read(n.profile.Config.Path)
			n.install(spec)
			n.binary = []byte("other shim")
			n.install(other)
			withBoth := n.read(n.profile.Config.Path)

			upgraded := spec
			upgraded.SpecHash, upgraded.Options = "h2", []containerdcfg.Option{{Key: "BinaryName", Value: "crun"}}
			n.binary = []byte("wkt shim v2")
			n.install(upgraded)
			if !bytes.Contains(n.read(n.profile.Config.Path), []byte("crun")) {
				t.Fatal("upgrade did not change the config")
			}
			n.uninstall(upgraded)

			onlyOther, err := containerdcfg.RemoveRuntime(withBoth, handler, n.installer().patchOptions())
			if err != nil {
				t.Fatal(err)
			}
			if got := n.read(n.profile.Config.Path); !bytes.Equal(got, onlyOther) {
				t.Errorf("after uninstalling %s the config is not the original plus %s's block:\n%s", handler, other.Handler, got)
			}
			if !n.loaded[other.Handler] || n.loaded[handler] {
				t.Errorf("containerd has handlers %v, want only %s", n.loaded, other.Handler)
			}
			if got, err := os.ReadFile(n.hostPath(otherBin)); err != nil || string(got) != "other shim" {
				t.Errorf("%s's binary: %q, %v", other.Handler, got, err)
			}
			if n.exists(binPath) {
				t.Errorf("%s's binary left behind", handler)
			}
			st := n.state()
			if e := st.Shims[other.Handler]; len(st.Shims) != 1 || e == nil || e.Shim != other.Shim || e.Phase != PhaseInstalled {
				t.Errorf("state after uninstalling %s: %+v", handler, st.Shims)
			}

			// A person edits the file; uninstalling the last Shim keeps the edit, removes the block.
			edited := append([]byte("# tuned by hand\n"), n.read(n.profile.Config.Path)...)
			if err := os.WriteFile(n.hostPath(n.profile.Config.Path), edited, 0o640); err != nil {
				t.Fatal(err)
			}
			n.uninstall(other)
			if got, want := n.read(n.profile.Config.Path), append([]byte("# tuned by hand\n"), orig...); !bytes.Equal(got, want) {
				t.Errorf("last uninstall: got\n%s\nwant the original plus the edit:\n%s", got, want)
			}
			if n.exists(n.profile.StateFile) || n.exists(otherBin) {
				t.Error("last uninstall left the state file or the binary")
			}
		})
	}
}

// Without edits, installs and uninstalls of two Shims in any order end with the original bytes; a
// template wasmkube created goes with the last block.
func TestLastUninstallRestoresOriginal(t *testing.T) {
	for _, mode := range []distro.ConfigMode{distro.ModeInPlace, distro.ModeTemplate} {
		for _, order := range [][2]Spec{{spec, other}, {other, spec}} {
			t.Run(string(mode)+"-"+order[0].Shim+"-first", func(t *testing.T) {
				t.Parallel()
				fixture := "config-v3.toml"
				if mode == distro.ModeTemplate {
					fixture = ""
				}
				n := newNode(t, mode, fixture)
				var orig []byte
				if fixture != "" {
					orig = n.read(n.profile.Config.Path)
				}
				n.install(spec)
				n.install(other)
				n.uninstall(order[0])
				n.uninstall(order[1])
				if fixture == "" {
					if n.exists(n.profile.Config.Path) {
						t.Errorf("template wasmkube created left behind:\n%s", n.read(n.profile.Config.Path))
					}
				} else if got := n.read(n.profile.Config.Path); !bytes.Equal(got, orig) {
					t.Errorf("config not the original:\n%s", got)
				}
				if n.exists(n.profile.StateFile) {
					t.Errorf("state file left: %s", n.read(n.profile.StateFile))
				}
			})
		}
	}
}

// No takeovers: a second Shim cannot install or uninstall a handler another Shim owns, and nothing
// changes on the node when it tries. The positive control is the owner's own re-run.
func TestHandlerBelongsToOneShim(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	n.install(spec)
	cfg, state := n.read(n.profile.Config.Path), n.read(n.profile.StateFile)
	restarts, fetches := n.restarts, n.fetches

	thief := spec
	thief.Shim, thief.SpecHash = "thief", "t1"
	r := n.installer().Install(context.Background(), thief)
	if r.Success || r.Reason != installerapi.ReasonHandlerConflict || r.Changed || !strings.Contains(r.Error, "belongs to Shim "+spec.Shim) {
		t.Fatalf("install of another Shim's handler: %+v", r)
	}
	r = n.installer().Uninstall(context.Background(), thief.Shim, thief.Handler, thief.RuntimeType)
	if !r.Success || r.Changed {
		t.Fatalf("uninstall by a Shim that owns nothing here: %+v", r)
	}
	if !bytes.Equal(n.read(n.profile.Config.Path), cfg) || !bytes.Equal(n.read(n.profile.StateFile), state) ||
		n.restarts != restarts || n.fetches != fetches || !n.exists(binPath) {
		t.Error("the refused Shim changed the node")
	}
	check(t, n.installer().Install(context.Background(), spec), noChange)
}

// Shims that share a runtime type get binaries of their own; an older installer's shared binary is
// kept while another entry still names it.
func TestBinariesAreNotShared(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	n.install(spec)
	n.binary = []byte("other shim")
	n.install(other)
	cfg := string(n.read(n.profile.Config.Path))
	for _, p := range []string{binPath, otherBin} {
		if !strings.Contains(cfg, `'`+p+`'`) && !strings.Contains(cfg, `"`+p+`"`) {
			t.Errorf("config does not name %s:\n%s", p, cfg)
		}
	}
	n.uninstall(spec)
	if !n.exists(otherBin) || n.exists(binPath) {
		t.Error("uninstall removed the other Shim's binary, or kept its own")
	}

	// State as an older installer left it: both entries name one binary (by runtime type only).
	legacy := "/opt/wasmkube/bin/containerd-shim-wkt-v2-legacy"
	n.install(spec)
	st := n.state()
	for _, e := range st.Shims {
		e.BinaryPath = legacy
	}
	if err := st.save(n.files, n.profile.StateFile); err != nil {
		t.Fatal(err)
	}
	if err := n.files.WriteFile(legacy, []byte("shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	upgraded := spec
	upgraded.SpecHash = "h2"
	n.install(upgraded) // moves spec to its own binary
	if !n.exists(legacy) {
		t.Fatal("upgrade removed the binary another entry still names")
	}
	n.uninstall(other)
	if n.exists(legacy) {
		t.Error("the last entry's uninstall kept its (legacy) binary")
	}
	if !n.exists(binPath) {
		t.Error("the upgraded Shim's own binary is gone")
	}
}

// A rollback undoes only its own Shim's change: an install killed after writing the config, then another
// Shim's install, then a re-run that fails and rolls back; the other Shim's block stays.
func TestRollbackKeepsOtherShims(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	orig := n.read(n.profile.Config.Path)
	in := n.installer()
	in.Host.AfterStep = func(s string) {
		if s == StepConfig {
			panic(crash{s})
		}
	}
	func() {
		defer func() { recover() }()
		in.Install(context.Background(), spec)
	}()
	n.binary = []byte("other shim")
	n.install(other)

	n.hides = handler
	r := n.installer().Install(context.Background(), spec)
	if r.Success || r.Reason != installerapi.ReasonVerifyFailed || !r.RolledBack {
		t.Fatalf("re-run with failing verify: %+v", r)
	}
	want, err := containerdcfg.AddRuntime(orig, containerdcfg.Runtime{Handler: other.Handler, Type: otherBin, Options: other.Options}, n.installer().patchOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := n.read(n.profile.Config.Path); !bytes.Equal(got, want) {
		t.Errorf("after the rollback the config is not the original plus %s:\n%s", other.Handler, got)
	}
	if st := n.state(); len(st.Shims) != 1 || st.Shims[other.Handler] == nil {
		t.Errorf("state after rollback: %+v", st.Shims)
	}
}

// The node lock: a second operation waits for the first; one that cannot get the lock before its
// deadline fails with NodeBusy and changes nothing. The kernel drops a killed holder's lock (see
// test/installer for a real SIGKILL).
func TestNodeLock(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	in := n.installer()
	holder, err := in.lockNode(context.Background(), "test holder")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cfg := n.read(n.profile.Config.Path)
	r := n.installer().Install(ctx, spec)
	if r.Success || r.Reason != installerapi.ReasonNodeBusy || r.Changed || !strings.Contains(r.Error, "test holder") ||
		!strings.Contains(r.Error, LockFile(n.profile.StateFile)) {
		t.Fatalf("install while the node is locked: %+v", r)
	}
	if n.fetches != 0 || n.restarts != 0 || n.exists(n.profile.StateFile) || !bytes.Equal(n.read(n.profile.Config.Path), cfg) {
		t.Error("an install that did not get the lock changed the node")
	}
	if r := n.installer().Uninstall(ctx, spec.Shim, handler, ""); r.Reason != installerapi.ReasonNodeBusy {
		t.Errorf("uninstall while locked: %+v", r)
	}
	if r := n.installer().Verify(ctx, handler, false); r.Reason != installerapi.ReasonNodeBusy {
		t.Errorf("verify while locked: %+v", r)
	}

	// Released: a waiting install goes ahead. Two installs of different Shims at once serialise (the
	// containerd stand-in is not safe for concurrent use, so the race detector would see an overlap).
	var wg sync.WaitGroup
	results := make([]installerapi.Result, 2)
	for i, s := range []Spec{spec, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = n.installer().Install(context.Background(), s)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if n.exists(n.profile.StateFile) {
		t.Error("an install ran while the lock was held")
	}
	holder.unlock()
	wg.Wait()
	for i, r := range results {
		if !r.Success {
			t.Errorf("install %d: %+v", i, r)
		}
	}
	if st := n.state(); len(st.Shims) != 2 {
		t.Errorf("state after concurrent installs: %+v", st.Shims)
	}
}

// An interrupted write leaves a temporary file beside the config; the next run removes it.
func TestStaleTempFilesRemoved(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	stale := []string{
		path.Join(path.Dir(n.profile.Config.Path), ".config.toml.wasmkube-123"),
		path.Join(path.Dir(n.profile.StateFile), ".state.json.wasmkube-456"),
		path.Join(n.profile.ShimDir, ".containerd-shim-wkt-v2.wasmkube-789"),
	}
	keep := path.Join(path.Dir(n.profile.Config.Path), ".config.toml.other")
	for _, f := range append(stale, keep) {
		if err := os.MkdirAll(filepath.Dir(n.hostPath(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.hostPath(f), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n.install(spec)
	for _, f := range stale {
		if n.exists(f) {
			t.Errorf("install left the stale %s", f)
		}
	}
	if !n.exists(keep) {
		t.Errorf("install removed %s, which is not its temporary file", keep)
	}
	if err := os.WriteFile(n.hostPath(stale[0]), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.uninstall(spec)
	if n.exists(stale[0]) {
		t.Error("uninstall left a stale temporary file")
	}
}

// The config file keeps its owner, group, mode and extended attributes (an SELinux label) through
// install and uninstall. Where the kernel refuses security.selinux (an LSM that rejects the label), a
// user.* attribute takes the same path through WriteFile.
func TestConfigMetadataKept(t *testing.T) {
	t.Parallel()
	n := newNode(t, distro.ModeInPlace, "config-v3.toml")
	file := n.hostPath(n.profile.Config.Path)
	if err := unix.Setxattr(file, "security.selinux", []byte("system_u:object_r:container_config_t:s0\x00"), 0); err != nil {
		t.Logf("security.selinux cannot be set here (%v); checking a user.* attribute only", err)
	}
	if err := unix.Setxattr(file, "user.wasmkube-test", []byte("label\x00value"), 0); err != nil {
		t.Fatalf("set a user.* extended attribute: %v", err)
	}
	if err := os.Chown(file, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	want := metadata(t, file)
	n.install(spec)
	if got := metadata(t, file); got != want {
		t.Errorf("after install: %s, want %s", got, want)
	}
	n.uninstall(spec)
	if got := metadata(t, file); got != want {
		t.Errorf("after uninstall: %s, want %s", got, want)
	}
}

// metadata describes a file's owner, group, mode and extended attributes.
func metadata(t *testing.T, file string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	names, err := xattrNames(file)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range names {
		v, err := xattr(file, name)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(name + "=" + string(v) + ";")
	}
	return fmt.Sprintf("%d:%d %o %s", st.Uid, st.Gid, st.Mode&0o7777, b.String())
}

// BenchmarkNodeLock measures taking and releasing the node lock when nobody else holds it: what every
// installer operation pays for it (the file exists after the first operation on a node).
func BenchmarkNodeLock(b *testing.B) {
	in := &Installer{Profile: distro.Profile{StateFile: "/opt/wasmkube/state.json"}, Host: Host{Files: DirFS{Root: b.TempDir()}}}
	l, err := in.lockNode(context.Background(), "first")
	if err != nil {
		b.Fatal(err)
	}
	l.unlock()
	b.ResetTimer()
	for b.Loop() {
		l, err := in.lockNode(context.Background(), "benchmark")
		if err != nil {
			b.Fatal(err)
		}
		l.unlock()
	}
}
