package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/internal/rollout"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/cri"
)

var (
	randomSeed  = flag.Uint64("random.seed", 0, "seed of TestManyShimsRandomized (0: from the clock; the test logs the seed it used)")
	randomSteps = flag.Int("random.steps", 16, "steps per containerd version in TestManyShimsRandomized (make test runs the default)")
)

// Seeded random sequences of install, upgrade and uninstall of three Shims on one node
// with a real containerd (2.4.2 with a version 3 config, and 1.6 with version 2). Two of the Shims share
// a runtime type. Steps run one operation, two operations of different Shims at once, or an operation
// killed with SIGKILL (after a random step, or after a random delay, mid-step) that is run again, with
// another Shim's operation in between half the time. After every step:
//   - the config is the original plus exactly the installed Shims' blocks, each holding its spec;
//   - containerd's own `config dump` holds exactly their options, every TOML type intact;
//   - the CRI reports exactly their handlers, with their binaries as runtime types;
//   - each installed Shim's binary is there with its spec's content, and no other binary is;
//   - the state file records exactly the installed Shims, each committed with its spec hash;
//   - the config's owner, group, mode and extended attributes are unchanged, and no temporary file of
//     an interrupted write is left.
//
// go test ./test/installer -run TestManyShimsRandomized -args -random.steps=200 -random.seed=N runs
// longer or replays a seed.
func TestManyShimsRandomized(t *testing.T) {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./test/installer -run TestManyShimsRandomized -args -random.seed=%d -random.steps=%d)", seed, seed, *randomSteps)
	for i, tt := range []struct {
		version       containerdtest.Version
		configVersion int
	}{{containerdtest.V2, 3}, {containerdtest.V1, 2}} {
		t.Run(tt.version.String(), func(t *testing.T) {
			t.Parallel()
			m := newMultiNode(t, tt.version, tt.configVersion, rand.New(rand.NewPCG(seed, uint64(i))))
			start := time.Now()
			for step := range *randomSteps {
				what := m.step()
				t.Logf("step %d: %s", step, what)
				m.check(what)
				if t.Failed() {
					t.Fatalf("seed %d, %s, step %d (%s): invariants broken; replay with -args -random.seed=%d", seed, tt.version, step, what, seed)
				}
			}
			t.Logf("%d steps, %d installer runs, %d killed, %d containerd restarts in %s", *randomSteps, m.runs, m.kills,
				m.d.Restarts(), time.Since(start).Round(time.Millisecond))
		})
	}
}

// rshim is one of the randomized test's Shims, with the spec it has on the node if installed.
type rshim struct {
	name, runtimeType string
	builtins          string // its builtin source directory (the source of its binary)
	binPath           string // where the installer puts its binary
	version           int    // spec versions made so far
	installed         *rspec // what the node has, nil when not installed
}

// rspec is one version of a Shim's spec.
type rspec struct {
	hash    string
	options []containerdcfg.Option // typed, as the manager converts the Shim's JSON
	flags   []string               // --option values, as the manager renders them
	binary  []byte
}

// multiNode is a node with one supervised containerd and the three Shims.
type multiNode struct {
	*node
	rng      *rand.Rand
	shims    []*rshim
	original []byte // the config before any Shim
	meta     string // the config's owner, group, mode and extended attributes
	runs     int
	kills    int
}

func newMultiNode(t *testing.T, v containerdtest.Version, configVersion int, rng *rand.Rand) *multiNode {
	n := newNode(t, v, configVersion)
	m := &multiNode{node: n, rng: rng}
	for _, s := range []struct{ name, runtimeType string }{
		{"rnd-a", "io.containerd.rnda.v2"},
		{"rnd-b", "io.containerd.rndshared.v2"}, // b and c share a runtime type
		{"rnd-c", "io.containerd.rndshared.v2"},
	} {
		bin, err := installer.BinaryName(s.name, s.runtimeType)
		if err != nil {
			t.Fatal(err)
		}
		m.shims = append(m.shims, &rshim{name: s.name, runtimeType: s.runtimeType, builtins: t.TempDir(),
			binPath: filepath.Join(n.shimDir, bin)})
	}
	// Metadata the installer must keep: an owner and mode of its own, extended attributes, and a
	// temporary file an interrupted write left.
	cfg := filepath.Join(n.root, configPath)
	if err := os.Chown(cfg, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(cfg, "security.selinux", []byte("system_u:object_r:container_config_t:s0\x00"), 0); err != nil {
		t.Logf("security.selinux cannot be set here (%v); a user.* attribute stands in", err)
	}
	if err := unix.Setxattr(cfg, "user.wasmkube-test", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), ".config.toml.wasmkube-12345"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.original = n.read(configPath)
	m.meta = fileMetadata(t, cfg)
	return m
}

// op is one installer run for a Shim.
type op struct {
	shim    *rshim
	install bool
	spec    *rspec // install only
}

func (o op) String() string {
	if o.install {
		return fmt.Sprintf("install %s %s", o.shim.name, o.spec.hash)
	}
	return "uninstall " + o.shim.name
}

// randomOp picks an operation for s: mostly what changes its state, sometimes a re-run of its current one.
func (m *multiNode) randomOp(s *rshim) op {
	if s.installed != nil && m.rng.IntN(3) == 0 {
		return op{shim: s}
	}
	if s.installed == nil || m.rng.IntN(2) == 0 {
		return op{shim: s, install: true, spec: m.newSpec(s)}
	}
	return op{shim: s, install: true, spec: s.installed} // idempotent re-run
}

// newSpec makes the Shim's next spec: new options of every type and a new binary.
func (m *multiNode) newSpec(s *rshim) *rspec {
	s.version++
	raw := map[string]json.RawMessage{}
	for _, k := range m.rng.Perm(6)[:1+m.rng.IntN(6)] {
		raw[fmt.Sprintf("Opt%d", k)] = m.randomJSON()
	}
	typed, err := rollout.Options(raw)
	if err != nil {
		m.t.Fatalf("options %v: %v", raw, err)
	}
	flags, err := rollout.OptionFlags(raw)
	if err != nil {
		m.t.Fatal(err)
	}
	return &rspec{hash: fmt.Sprintf("%s-v%d", s.name, s.version), options: typed, flags: flags,
		binary: append(bytes.Clone(m.shim), fmt.Sprintf("\n%s version %d\n", s.name, s.version)...)}
}

// randomJSON is a Shim option value as a user writes it: strings with quotes, backslashes, tabs,
// line breaks and non-ASCII text, integers to the ends of int64, floats, booleans, lists of strings.
func (m *multiNode) randomJSON() json.RawMessage {
	pieces := []string{`with "quotes"`, `C:\path\`, "tab\there", "line\nbreak", "é日本🙂", "'single'", "", "plain", "\x01ctl\x7f"}
	str := func() string {
		var b strings.Builder
		for range m.rng.IntN(3) + 1 {
			b.WriteString(pieces[m.rng.IntN(len(pieces))])
		}
		return b.String()
	}
	var v any
	switch m.rng.IntN(6) {
	case 0:
		v = str()
	case 1:
		v = []int64{math.MaxInt64, math.MinInt64, 0, -1, 1 << 40}[m.rng.IntN(5)]
	case 2:
		v = float64(m.rng.IntN(2000)-1000) + 0.25 + float64(m.rng.IntN(4))*1e-9 // never integral
	case 3:
		v = m.rng.IntN(2) == 0
	case 4:
		l := make([]string, m.rng.IntN(3))
		for i := range l {
			l[i] = str()
		}
		v = l
	case 5:
		v = m.rng.Int64() - math.MaxInt64/2
	}
	b, err := json.Marshal(v)
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// step runs one random step and updates the model; it describes what it did.
func (m *multiNode) step() string {
	s := m.shims[m.rng.IntN(len(m.shims))]
	switch k := m.rng.IntN(11); {
	case k == 10:
		// Another Shim claims an installed Shim's handler: the installer refuses and changes nothing.
		var owners []*rshim
		for _, x := range m.shims {
			if x.installed != nil {
				owners = append(owners, x)
			}
		}
		if len(owners) == 0 {
			return "no takeover attempt (nothing installed)"
		}
		owner := owners[m.rng.IntN(len(owners))]
		thief := &rshim{name: "rnd-thief", runtimeType: owner.runtimeType, builtins: m.t.TempDir()}
		spec := m.newSpec(thief)
		r, err := m.exec(op{shim: thief, install: true, spec: spec}, nil, 0, "--handler="+owner.name)
		if err != nil || r.err == nil || r.result.Reason != "HandlerConflict" || r.result.Changed {
			m.t.Fatalf("install of Shim rnd-thief with %s's handler: %v, %+v (stderr %s); want HandlerConflict, no change", owner.name, err, r.result, r.stderr)
		}
		return "takeover of " + owner.name + "'s handler refused"
	case k < 4:
		o := m.randomOp(s)
		m.mustRun(o, nil, 0)
		return o.String()
	case k < 7:
		others := slices.DeleteFunc(slices.Clone(m.shims), func(x *rshim) bool { return x == s })
		o1, o2 := m.randomOp(s), m.randomOp(others[m.rng.IntN(len(others))])
		var wg sync.WaitGroup
		var r1, r2 run
		var e1, e2 error
		wg.Add(2)
		go func() { defer wg.Done(); r1, e1 = m.exec(o1, nil, 0) }()
		go func() { defer wg.Done(); r2, e2 = m.exec(o2, nil, 0) }()
		wg.Wait()
		m.settle(o1, r1, e1)
		m.settle(o2, r2, e2)
		return fmt.Sprintf("concurrently: %s | %s", o1, o2)
	default:
		o := m.randomOp(s)
		var env []string
		var delay time.Duration
		how := ""
		if m.rng.IntN(2) == 0 {
			steps := []string{installer.StepLock, installer.StepPlan, installer.StepIntent, installer.StepConfig,
				installer.StepRestart, installer.StepVerify, installer.StepBinary, installer.StepCommit}
			if o.install {
				steps = append(steps, installer.StepFetch)
			}
			step := steps[m.rng.IntN(len(steps))]
			env, how = []string{"WASMKUBE_TEST_CRASH_AFTER=" + step}, "after step "+step
		} else {
			delay = time.Duration(m.rng.IntN(700)) * time.Millisecond
			how = "after " + delay.String()
		}
		r, err := m.exec(o, env, delay)
		if err != nil {
			m.t.Fatalf("%s: %v", o, err)
		}
		desc := fmt.Sprintf("%s killed %s", o, how)
		if !r.killed {
			m.settle(o, r, nil) // it finished first
			return desc + " (finished first)"
		}
		m.kills++
		if m.rng.IntN(2) == 0 { // another Shim's operation before the re-run
			var others []*rshim
			for _, x := range m.shims {
				if x != s {
					others = append(others, x)
				}
			}
			between := m.randomOp(others[m.rng.IntN(len(others))])
			m.mustRun(between, nil, 0)
			desc += ", then " + between.String()
		}
		m.mustRun(o, nil, 0)
		return desc + ", then run again"
	}
}

// mustRun runs o to its end and records its effect.
func (m *multiNode) mustRun(o op, env []string, delay time.Duration) {
	r, err := m.exec(o, env, delay)
	m.settle(o, r, err)
}

// settle records a finished run in the model, failing the test unless it succeeded.
func (m *multiNode) settle(o op, r run, err error) {
	m.t.Helper()
	if err == nil && (r.err != nil || !r.result.Success) {
		err = fmt.Errorf("exit %v, %s: %s\nstderr: %s", r.err, r.result.Reason, r.result.Error, r.stderr)
	}
	if err != nil {
		m.t.Fatalf("%s: %v", o, err)
	}
	if o.install {
		o.shim.installed = o.spec
	} else {
		o.shim.installed = nil
	}
}

// exec runs the node-installer for o, with extra environment and arguments, killing it with SIGKILL
// after delay (if not 0). It is safe from any goroutine (it does not touch t).
func (m *multiNode) exec(o op, env []string, delay time.Duration, extra ...string) (run, error) {
	s := o.shim
	args := []string{"uninstall", "--shim-name=" + s.name, "--handler=" + s.name}
	if o.install {
		// The builtin source serves the spec's binary; only this Shim's runs read its directory.
		if err := os.WriteFile(filepath.Join(s.builtins, "containerd-shim-wazero-v1"), o.spec.binary, 0o755); err != nil {
			return run{}, err
		}
		args = []string{"install", "--shim-name=" + s.name, "--handler=" + s.name, "--runtime-type=" + s.runtimeType,
			"--source-builtin=wazero", "--builtin-dir=" + s.builtins, "--spec-hash=" + o.spec.hash}
		for _, f := range o.spec.flags {
			args = append(args, "--option="+f)
		}
	}
	args = append(args, "--restart=signal", "--shim-dir="+m.shimDir, "--host-root="+m.root, "--exec-root=/", "--result-file=",
		"--proc-root=/proc", "--timeout=3m")
	args = append(args, extra...) // a later flag wins
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeInstaller, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return run{}, err
	}
	if delay > 0 {
		t := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer t.Stop()
	}
	err := cmd.Wait()
	m.count(&m.runs)
	r := run{stderr: stderr.String(), err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
			return r, nil
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &r.result); err != nil {
		return r, fmt.Errorf("stdout is not one JSON result: %v\n%s\nstderr: %s", err, stdout.String(), r.stderr)
	}
	return r, nil
}

var countMu sync.Mutex

func (m *multiNode) count(c *int) {
	countMu.Lock()
	defer countMu.Unlock()
	*c++
}

// check verifies every invariant against the model.
func (m *multiNode) check(what string) {
	t := m.t
	t.Helper()
	cfg := m.read(configPath)
	var installed []*rshim
	for _, s := range m.shims {
		if s.installed != nil {
			installed = append(installed, s)
		}
	}

	// The config: the original plus exactly the installed Shims' blocks, each holding its spec.
	version, err := containerdcfg.Version(cfg, containerdcfg.PatchOptions{})
	if err != nil {
		t.Fatalf("after %s the config does not parse: %v\n%s", what, err, cfg)
	}
	rest := cfg
	for _, s := range m.shims {
		owned, err := containerdcfg.Owned(cfg, s.name, containerdcfg.PatchOptions{})
		if err != nil || owned != (s.installed != nil) {
			t.Errorf("after %s: block of %s present=%t (%v), want %t", what, s.name, owned, err, s.installed != nil)
		}
		if rest, err = containerdcfg.RemoveRuntime(rest, s.name, containerdcfg.PatchOptions{}); err != nil {
			t.Fatalf("remove %s: %v", s.name, err)
		}
	}
	if !bytes.Equal(rest, m.original) {
		t.Errorf("after %s the config without the installed blocks is not the original:\n%s\nwant:\n%s", what, rest, m.original)
	}
	var doc map[string]any
	if err := toml.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range installed {
		path, _ := containerdcfg.RuntimeTable(version, s.name)
		want := map[string]any{"runtime_type": s.binPath}
		if len(s.installed.options) > 0 {
			want["options"] = optionMap(s.installed.options)
		}
		if got := lookupTable(doc, path); !reflect.DeepEqual(got, want) {
			t.Errorf("after %s the config's table for %s is\n%#v\nwant\n%#v", what, s.name, got, want)
		}
	}

	// containerd's own reading of it.
	dump := m.configDump()
	for _, s := range m.shims {
		got := lookupRuntime(dump, s.name)
		if (got != nil) != (s.installed != nil) {
			t.Errorf("after %s containerd's config dump has runtime %s: %t, want %t", what, s.name, got != nil, s.installed != nil)
			continue
		}
		if got == nil {
			continue
		}
		if got["runtime_type"] != s.binPath {
			t.Errorf("after %s containerd's runtime_type of %s is %v, want %s", what, s.name, got["runtime_type"], s.binPath)
		}
		opts, _ := got["options"].(map[string]any)
		if want := optionMap(s.installed.options); !reflect.DeepEqual(opts, want) && !(len(opts) == 0 && len(want) == 0) {
			t.Errorf("after %s containerd's options of %s are\n%#v\nwant\n%#v", what, s.name, opts, want)
		}
	}

	// The CRI reports exactly the installed handlers (besides runc), each running its binary.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cri.WaitReady(ctx, m.d.Socket(), "", true)
	if err != nil {
		t.Fatal(err)
	}
	var gotHandlers, wantHandlers []string
	for _, h := range st.HandlerNames() {
		if h != "runc" {
			gotHandlers = append(gotHandlers, h)
		}
	}
	for _, s := range installed {
		wantHandlers = append(wantHandlers, s.name)
		if typ := st.Handlers[s.name].Type; typ != "" && typ != s.binPath {
			t.Errorf("after %s the CRI runs %s through %s, want %s", what, s.name, typ, s.binPath)
		}
	}
	if !slices.Equal(gotHandlers, wantHandlers) {
		t.Errorf("after %s the CRI reports handlers %v, want %v", what, gotHandlers, wantHandlers)
	}

	// Binaries: each installed Shim's own, with its spec's content, and nothing else.
	entries, err := os.ReadDir(filepath.Join(m.root, m.shimDir))
	if err != nil {
		t.Fatal(err)
	}
	var gotBins, wantBins []string
	for _, e := range entries {
		gotBins = append(gotBins, filepath.Join(m.shimDir, e.Name()))
	}
	for _, s := range installed {
		wantBins = append(wantBins, s.binPath)
		if got := m.read(s.binPath); !bytes.Equal(got, s.installed.binary) {
			t.Errorf("after %s the binary of %s is not its spec's (%d bytes, want %d)", what, s.name, len(got), len(s.installed.binary))
		}
	}
	sort.Strings(wantBins)
	if !slices.Equal(gotBins, wantBins) {
		t.Errorf("after %s the shim directory holds %v, want %v", what, gotBins, wantBins)
	}

	// The state file agrees.
	var state installer.State
	if data := m.read(stateFile); data != nil {
		if err := json.Unmarshal(data, &state); err != nil {
			t.Fatal(err)
		}
	} else if len(installed) > 0 {
		t.Errorf("after %s there is no state file", what)
	}
	var gotEntries []string
	for h := range state.Shims {
		gotEntries = append(gotEntries, h)
	}
	sort.Strings(gotEntries)
	if !slices.Equal(gotEntries, wantHandlers) {
		t.Errorf("after %s the state file records %v, want %v", what, gotEntries, wantHandlers)
	}
	for _, s := range installed {
		e := state.Shims[s.name]
		if e == nil || e.Shim != s.name || e.Phase != installer.PhaseInstalled || e.Tx != nil || e.SpecHash != s.installed.hash ||
			e.BinaryPath != s.binPath || e.RuntimeType != s.runtimeType || e.ConfigPath != configPath {
			t.Errorf("after %s the state entry of %s is %+v", what, s.name, e)
		}
	}

	// File metadata, and no leftovers of interrupted writes.
	cfgFile := filepath.Join(m.root, configPath)
	if got := fileMetadata(t, cfgFile); got != m.meta {
		t.Errorf("after %s the config's metadata is %s, want %s", what, got, m.meta)
	}
	if m.runs == 0 {
		return // the temporary file planted by newMultiNode is the first installer run's to remove
	}
	for _, dir := range []string{filepath.Dir(cfgFile), filepath.Dir(filepath.Join(m.root, stateFile))} {
		tmps, _ := filepath.Glob(filepath.Join(dir, ".*.wasmkube-*"))
		if len(tmps) > 0 {
			t.Errorf("after %s temporary files are left: %v", what, tmps)
		}
	}
}

// configDump is containerd's own reading of the node's config (`containerd config dump`), decoded.
func (m *multiNode) configDump() map[string]any {
	bin := testenv.Containerd1(m.t)
	if m.d.Version() == containerdtest.V2 {
		bin = filepath.Join(testenv.Containerd2Dir(m.t), "containerd")
	}
	out, err := exec.Command(bin, "--config", m.d.ConfigPath(), "config", "dump").Output()
	if err != nil {
		m.t.Fatalf("containerd config dump: %v", err)
	}
	// containerd 1.6's dump writes control characters other than tab and line breaks unescaped, which
	// TOML forbids (it reads them correctly from our escapes: its CRI plugin logs them as loaded). Such
	// bytes only occur inside strings, so escaping them reads the values 1.6 holds.
	var esc bytes.Buffer
	for _, c := range out {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			fmt.Fprintf(&esc, "\\u%04X", c)
		} else {
			esc.WriteByte(c)
		}
	}
	out = esc.Bytes()
	var doc map[string]any
	if err := toml.Unmarshal(out, &doc); err != nil {
		m.t.Fatalf("parse containerd config dump: %v\n%s", err, out)
	}
	return doc
}

// lookupRuntime finds a runtime's table in a config dump (any containerd version).
func lookupRuntime(dump map[string]any, handler string) map[string]any {
	for _, id := range []string{"io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri"} {
		if t := lookupTable(dump, []string{"plugins", id, "containerd", "runtimes", handler}); t != nil {
			return t
		}
	}
	return nil
}

func lookupTable(doc map[string]any, path []string) map[string]any {
	cur := doc
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// optionMap is how options read back from TOML: integers int64, lists []any.
func optionMap(opts []containerdcfg.Option) map[string]any {
	out := map[string]any{}
	for _, o := range opts {
		switch v := o.Value.(type) {
		case []string:
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = s
			}
			out[o.Key] = l
		default:
			out[o.Key] = v
		}
	}
	return out
}

// fileMetadata describes a file's owner, group, mode and extended attributes.
func fileMetadata(t testing.TB, file string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(file, buf)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	desc := fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	for _, name := range names {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		n, err := unix.Getxattr(file, name, v)
		if err != nil {
			t.Fatal(err)
		}
		desc += fmt.Sprintf(" %s=%q", name, v[:n])
	}
	return desc
}

// TestNodeLockThroughBinary: while another process holds the node lock, an install waits until its
// deadline and fails with NodeBusy, naming the lock, having changed nothing; when the holder is killed
// (SIGKILL), the kernel releases the lock and the next install goes ahead at once.
func TestNodeLockThroughBinary(t *testing.T) {
	t.Parallel()
	n := newNode(t, containerdtest.V2, 3)
	before := n.read(configPath)
	lock := filepath.Join(n.root, installer.LockFile(stateFile))
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("flock", lock, "sleep", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Skipf("util-linux flock: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL); holder.Wait() })
	// flock(1) has the lock once the file is locked by someone: wait for that.
	for deadline := time.Now().Add(10 * time.Second); ; {
		f, err := os.Open(lock)
		if err == nil {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			f.Close()
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flock(1) did not take the lock: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The last --timeout wins: node.install's own comes first.
	r := runInstaller(t, nil, "install", "--shim-name="+shim, "--runtime-type="+runtimeType, "--source-builtin=wazero",
		"--builtin-dir="+n.builtins, "--restart=signal", "--shim-dir="+n.shimDir, "--host-root="+n.root, "--result-file=",
		"--proc-root=/proc", "--timeout=2s")
	if r.err == nil || r.result.Reason != "NodeBusy" || r.result.Changed || !strings.Contains(r.result.Error, installer.LockFile(stateFile)) {
		t.Fatalf("install while the node is locked: %v %+v", r.err, r.result)
	}
	if !bytes.Equal(n.read(configPath), before) || n.exists(stateFile) || n.exists(n.binPath) || n.d.Restarts() != 0 {
		t.Error("an install that did not get the node lock changed the node")
	}

	syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
	start := time.Now()
	n.install(nil).mustSucceed(t, "install after the holder was killed")
	t.Logf("install after the holder's SIGKILL took %s", time.Since(start).Round(time.Millisecond))
}
