package containerdcfg

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// containerd is one real containerd binary, its major version and the config versions it loads.
type containerd struct {
	name     string
	bin      string
	major    int
	versions []int
}

func containerds(t *testing.T) []containerd {
	return []containerd{
		// 1.6 reads versions 1 and 2; a version 3 file loads without error but the runtimes vanish.
		{name: "containerd-1.6", bin: testenv.Containerd1(t), major: 1, versions: []int{1, 2}},
		// 2.x migrates versions 1-3 on load.
		{name: "containerd-2.4.2", bin: filepath.Join(testenv.Containerd2Dir(t), "containerd"), major: 2, versions: []int{1, 2, 3, 4}},
	}
}

// renderBases maps template fixtures to the file standing in for k3s's "base" template.
var renderBases = map[string]string{
	"k3s-config.toml.tmpl":     "k3s-base-v2.toml",
	"k3s-base-only.toml.tmpl":  "k3s-base-v3.toml",
	"rke2-config-v3.toml.tmpl": "k3s-base-v3.toml",
}

// renderTemplate turns a template into what k3s would write: the base template in place of
// `{{ template "base" . }}`, other template-only lines (comments) dropped.
func renderTemplate(t *testing.T, file string, doc []byte) []byte {
	t.Helper()
	base, ok := renderBases[file]
	if !ok {
		return doc
	}
	var out []byte
	for _, l := range lines(doc) {
		switch {
		case !isTemplateLine(trimEOL(l)):
			out = append(out, l...)
		case bytes.Contains(l, []byte(`template "base"`)):
			b, err := os.ReadFile(filepath.Join("testdata", "render", base))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

// dump writes doc to path and returns `containerd --config path config dump`, decoded, and the
// unknown-key warnings it printed. The same path is used for the original and the patched file because
// containerd 1.6 lists the config file itself under `imports` in the dump.
func dump(t *testing.T, bin, path string, doc []byte) (map[string]any, []string) {
	t.Helper()
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--config", path, "config", "dump")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = filepath.Dir(path)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --config %s config dump: %v\n%s", bin, path, err, stderr.Bytes())
	}
	var tree map[string]any
	if err := toml.Unmarshal(stdout.Bytes(), &tree); err != nil {
		t.Fatalf("parse dump of %s: %v\n%s", path, err, stdout.Bytes())
	}
	return tree, unknownKeys(stderr.String())
}

var unknownKeyRE = regexp.MustCompile(`(?i)unknown key.*`)

// unknownKeys returns containerd 2.x's "Ignoring unknown key" warnings without their timestamps.
func unknownKeys(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if m := unknownKeyRE.FindString(l); m != "" {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// treeDiff returns the dotted paths at which two decoded TOML trees differ.
func treeDiff(a, b map[string]any, prefix string) []string {
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, prefix+k+" (removed)")
		}
	}
	for k, bv := range b {
		av, ok := a[k]
		am, aok := av.(map[string]any)
		bm, bok := bv.(map[string]any)
		switch {
		case !ok:
			out = append(out, prefix+k+" (added)")
		case aok && bok:
			out = append(out, treeDiff(am, bm, prefix+k+".")...)
		case !reflect.DeepEqual(av, bv):
			out = append(out, prefix+k)
		}
	}
	slices.Sort(out)
	return out
}

// checkRuntime asserts that the dumped runtime carries rt's type, path and options. (1.6 keeps
// runtime_path in its config but does not use it when starting shims.)
func checkRuntime(t *testing.T, got map[string]any, rt Runtime) {
	t.Helper()
	if got["runtime_type"] != rt.Type {
		t.Errorf("dumped runtime_type = %v, want %q", got["runtime_type"], rt.Type)
	}
	if got["runtime_path"] != rt.Path {
		t.Errorf("dumped runtime_path = %v, want %q", got["runtime_path"], rt.Path)
	}
	opts, _ := got["options"].(map[string]any)
	for _, o := range rt.Options {
		if v, ok := opts[o.Key]; !ok || !equalValues(v, o.decoded()) {
			t.Errorf("dumped option %s = %#v (present %v), want %#v", o.Key, v, ok, o.normalized())
		}
	}
}

// TestContainerdLoadsPatchedConfigs feeds every good fixture, before and after AddRuntime, to real
// containerd 1.6 and 2.4.2 (`config dump`) and checks that the only difference is the new runtime.
func TestContainerdLoadsPatchedConfigs(t *testing.T) {
	testenv.Integration(t)
	for _, cd := range containerds(t) {
		for _, f := range fixtures {
			if f.err != nil || !slices.Contains(cd.versions, f.version) || f.opts.ContainerdMajor != 0 && f.opts.ContainerdMajor != cd.major {
				continue
			}
			t.Run(cd.name+"/"+f.name(), func(t *testing.T) {
				t.Parallel()
				in := readInput(t, f.file)
				out, err := AddRuntime(in, testRuntime, f.opts)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "config.toml")
				before, warnBefore := dump(t, cd.bin, path, renderTemplate(t, f.file, in))
				after, warnAfter := dump(t, cd.bin, path, renderTemplate(t, f.file, out))
				if !reflect.DeepEqual(warnBefore, warnAfter) {
					t.Errorf("unknown-key warnings changed:\nbefore %q\nafter  %q", warnBefore, warnAfter)
				}
				dumpVersion, _ := after["version"].(int64)
				table, err := RuntimeTable(int(dumpVersion), testRuntime.Handler)
				if err != nil {
					t.Fatalf("dump version: %v", err)
				}
				got, ok := lookup(after, table)
				if !ok {
					t.Fatalf("dump has no runtime at %v", table)
				}
				gotTable, _ := got.(map[string]any)
				checkRuntime(t, gotTable, testRuntime)
				if _, ok := lookup(before, table); ok && !hasMarker(in) && !f.opts.Adopt {
					t.Fatalf("original dump already has %v", table)
				}
				runtimes, _ := lookup(after, table[:len(table)-1])
				delete(runtimes.(map[string]any), testRuntime.Handler)
				if hasMarker(in) || f.opts.Adopt {
					// The original had a (managed or foreign) wazero: drop it on both sides.
					if r, ok := lookup(before, table[:len(table)-1]); ok {
						delete(r.(map[string]any), testRuntime.Handler)
					}
				}
				if d := treeDiff(before, after, ""); len(d) > 0 {
					t.Errorf("dumps differ beyond runtime %s at %q", testRuntime.Handler, d)
				}
			})
		}
	}
}

// TestContainerdMergesDropIns imports DropIn files into a version 3 main config with containerd 2.4.2
// and checks that the runtime is added and nothing else changes (2.x deep-merges imports).
func TestContainerdMergesDropIns(t *testing.T) {
	testenv.Integration(t)
	bin := filepath.Join(testenv.Containerd2Dir(t), "containerd")
	main := readInput(t, "kind-v3.toml")
	for _, v := range []int{2, 3, 4} {
		t.Run("version-"+string(rune('0'+v)), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			dropIn, err := DropIn(v, testRuntime)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "wasmkube.toml"), dropIn, 0o600); err != nil {
				t.Fatal(err)
			}
			withImport := bytes.Replace(main, []byte("version = 3\n"),
				[]byte("version = 3\nimports = ['"+filepath.Join(dir, "*.toml")+"']\n"), 1)
			path := filepath.Join(dir, "main", "config.toml")
			if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			before, _ := dump(t, bin, path, main)
			after, _ := dump(t, bin, path, withImport)
			table, _ := RuntimeTable(4, testRuntime.Handler)
			got, ok := lookup(after, table)
			if !ok {
				t.Fatalf("dump has no runtime at %v", table)
			}
			checkRuntime(t, got.(map[string]any), testRuntime)
			runtimes, _ := lookup(after, table[:len(table)-1])
			delete(runtimes.(map[string]any), testRuntime.Handler)
			delete(after, "imports")
			delete(before, "imports")
			if d := treeDiff(before, after, ""); len(d) > 0 {
				t.Errorf("dumps differ beyond runtime %s at %q", testRuntime.Handler, d)
			}
		})
	}
}

// TestContainerd16ReplacesDefaultRuntimes shows the trap that AddRuntime avoids for containerd 1.x:
// Debian's stock config defines no runtimes, and containerd 1.6 loses its built-in runc once the file
// defines any, while 2.4.2 keeps it. Patched for 1.x, the file carries 1.x's default runtime in a block
// of its own, and 1.6's dump is the original's plus the handler; patched for 2.x, it does not, which
// 2.4.2 accepts and 1.6 does not (the positive control: without the default block the trap is real).
func TestContainerd16ReplacesDefaultRuntimes(t *testing.T) {
	testenv.Integration(t)
	in := readInput(t, "debian-v2.toml")
	if _, err := AddRuntime(in, testRuntime, PatchOptions{}); !errors.Is(err, ErrContainerdVersion) {
		t.Fatalf("AddRuntime without the containerd version: err = %v, want ErrContainerdVersion", err)
	}
	outs := map[int][]byte{}
	for _, major := range []int{1, 2} {
		out, err := AddRuntime(in, testRuntime, PatchOptions{ContainerdMajor: major})
		if err != nil {
			t.Fatal(err)
		}
		outs[major] = out
	}
	if bytes.Equal(outs[1], outs[2]) || !bytes.Contains(outs[1], []byte(beginDefault)) {
		t.Fatalf("the containerd 1.x patch holds no default block:\n%s", outs[1])
	}
	for _, cd := range containerds(t) {
		for major, out := range outs {
			path := filepath.Join(t.TempDir(), "config.toml")
			before, _ := dump(t, cd.bin, path, in)
			after, _ := dump(t, cd.bin, path, out)
			v, _ := before["version"].(int64)
			runc, _ := RuntimeTable(int(v), "runc")
			if _, ok := lookup(before, runc); !ok {
				t.Fatalf("%s: no built-in runc in the dump of the original", cd.name)
			}
			_, kept := lookup(after, runc)
			if want := cd.major == 2 || major == 1; kept != want {
				t.Errorf("%s, patched for containerd %d.x: runc kept = %v, want %v", cd.name, major, kept, want)
			}
			if cd.major != major {
				continue
			}
			runtimes, _ := lookup(after, runc[:len(runc)-1])
			delete(runtimes.(map[string]any), testRuntime.Handler)
			if d := treeDiff(before, after, ""); len(d) > 0 {
				t.Errorf("%s: dumps differ beyond runtime %s at %q", cd.name, testRuntime.Handler, d)
			}
		}
	}
}

// TestContainerd2DropsShadowedRuntime is the silent drop the placement and the output check prevent: AKS's
// containerd 2 configuration declares version 2 but keeps its runtimes under io.containerd.cri.v1.runtime.
// A runtime written under io.containerd.grpc.v1.cri (where version 2 files usually keep them) loads
// without a word on containerd 2.4.2 and is gone from its dump; the output check refuses that document.
// AddRuntime's own output (the positive control) has the runtime in the dump and passes the check.
func TestContainerd2DropsShadowedRuntime(t *testing.T) {
	testenv.Integration(t)
	bin := filepath.Join(testenv.Containerd2Dir(t), "containerd")
	in := readInput(t, "aks-containerd2-v2.toml")
	opts := PatchOptions{ContainerdMajor: 2}
	good, err := AddRuntime(in, testRuntime, opts)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := RuntimeTable(2, testRuntime.Handler) // under io.containerd.grpc.v1.cri
	shadowed := append(bytes.Clone(in), render(style{eol: "\n"}, beginMarker(testRuntime.Handler), endMarker(testRuntime.Handler), old, testRuntime)...)

	tgt, err := load(in, testRuntime.Handler, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		doc     []byte
		path    []string
		present bool
	}{
		{"patched", good, append(runtimesTable(independentTree(t, in), 2, 2), testRuntime.Handler), true},
		{"shadowed", shadowed, old, false},
	} {
		dumped, _ := dump(t, bin, filepath.Join(t.TempDir(), "config.toml"), c.doc)
		table, _ := RuntimeTable(4, testRuntime.Handler)
		if _, ok := lookup(dumped, table); ok != c.present {
			t.Errorf("%s: containerd 2.4.2 has runtime %s = %v, want %v", c.name, testRuntime.Handler, ok, c.present)
		}
		err := tgt.checkAdded(c.doc, &placement{majors: []int{2}, path: c.path}, testRuntime, opts)
		if c.present && err != nil {
			t.Errorf("%s: output check: %v", c.name, err)
		}
		if !c.present && !errors.Is(err, errOutputCheck) {
			t.Errorf("%s: output check = %v, want it to fail", c.name, err)
		}
	}
}

// TestContainerd16DefaultRuntimeShared adds two handlers for containerd 1.x to a file without runtimes and
// removes them in both orders: the default runtime block stays while any handler's block does (1.6 keeps
// runc in between), and the last removal gives the original bytes back.
func TestContainerd16DefaultRuntimeShared(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.Containerd1(t)
	in := readInput(t, "debian-v2.toml")
	opts := PatchOptions{ContainerdMajor: 1}
	spin := Runtime{Handler: "spin", Type: "io.containerd.spin.v2"}
	one, err := AddRuntime(in, testRuntime, opts)
	if err != nil {
		t.Fatal(err)
	}
	both, err := AddRuntime(one, spin, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(both, []byte(beginDefault)); n != 1 {
		t.Fatalf("%d default blocks after adding two handlers:\n%s", n, both)
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	original, _ := dump(t, bin, path, in)
	runc, _ := RuntimeTable(2, "runc")
	wantRunc, _ := lookup(original, runc)
	for _, order := range [][]string{{"wazero", "spin"}, {"spin", "wazero"}} {
		doc := both
		for i, h := range order {
			if doc, err = RemoveRuntime(doc, h, opts); err != nil {
				t.Fatal(err)
			}
			if i == len(order)-1 {
				if !bytes.Equal(doc, in) {
					t.Errorf("removing %v did not restore the original:\n%s", order, doc)
				}
				continue
			}
			dumped, _ := dump(t, bin, path, doc)
			if gotRunc, _ := lookup(dumped, runc); !reflect.DeepEqual(gotRunc, wantRunc) {
				t.Errorf("after removing %s: containerd 1.6 has runc %v, want %v", h, gotRunc, wantRunc)
			}
		}
	}
}
