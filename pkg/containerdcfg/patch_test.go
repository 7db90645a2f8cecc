package containerdcfg

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/wasmkube/wasmkube/internal/goldenfile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// testRuntime has one option of every type.
var testRuntime = Runtime{
	Handler: "wazero",
	Type:    "io.containerd.wazero.v1",
	Path:    "/opt/wasmkube/bin/containerd-shim-wazero-v1",
	Options: []Option{
		{Key: "LogLevel", Value: "info"},
		{Key: "Debug", Value: true},
		{Key: "MaxMemoryPages", Value: int64(256)},
		{Key: "CPURatio", Value: 0.5},
	},
}

// fixture is one input file under testdata/input and what AddRuntime must do with it.
type fixture struct {
	file    string
	opts    PatchOptions
	version int    // expected Version (0 for error cases)
	plugin  string // plugin ID the runtime goes under, if not the version's usual one (RuntimeTable)
	err     error  // expected sentinel, nil for success
}

// fixtures lists every config file the tests patch; the containerd integration test loads the good ones.
var fixtures = []fixture{
	{file: "containerd16-default-v2.toml", version: 2},
	{file: "containerd17-v2.toml", version: 2},
	{file: "containerd21-default-v3.toml", version: 3},
	{file: "containerd24-default-v4.toml", version: 4},
	{file: "kind-v2.toml", version: 2},
	{file: "kind-v3.toml", version: 3},
	{file: "k3s-config.toml.tmpl", opts: PatchOptions{DefaultVersion: 2}, version: 2},
	{file: "k3s-base-only.toml.tmpl", opts: PatchOptions{DefaultVersion: 3}, version: 3},
	{file: "rke2-config-v3.toml.tmpl", opts: PatchOptions{DefaultVersion: 3}, version: 3},
	{file: "microk8s-containerd-template.toml", version: 2},
	{file: "aks-v2.toml", version: 2},
	{file: "eks-al2-v2.toml", version: 2},
	{file: "crlf-v2.toml", version: 2},
	{file: "runtimes-parent-v2.toml", version: 2},
	{file: "dotted-keys-v2.toml", version: 2},
	{file: "dotted-runtimes-v3.toml", version: 3},
	{file: "no-trailing-newline-v3.toml", version: 3},
	{file: "v1.toml", version: 1},
	{file: "empty.toml", version: 1, err: ErrContainerdVersion},
	{file: "empty.toml", opts: PatchOptions{ContainerdMajor: 1}, version: 1},
	{file: "empty.toml", opts: PatchOptions{ContainerdMajor: 2}, version: 1},
	{file: "debian-v2.toml", version: 2, err: ErrContainerdVersion},
	{file: "debian-v2.toml", opts: PatchOptions{ContainerdMajor: 1}, version: 2},
	{file: "debian-v2.toml", opts: PatchOptions{ContainerdMajor: 2}, version: 2},
	{file: "aks-containerd2-v2.toml", version: 2, err: ErrContainerdVersion},
	{file: "aks-containerd2-v2.toml", opts: PatchOptions{ContainerdMajor: 1}, version: 2},
	{file: "aks-containerd2-v2.toml", opts: PatchOptions{ContainerdMajor: 2}, version: 2, plugin: pluginV3},
	{file: "cri-runtime-plugin-v2.toml", opts: PatchOptions{ContainerdMajor: 1}, version: 2},
	{file: "cri-runtime-plugin-v2.toml", opts: PatchOptions{ContainerdMajor: 2}, version: 2, plugin: pluginV3},
	{file: "containerd21-default-v3.toml", opts: PatchOptions{ContainerdMajor: 1}, version: 3, err: ErrUnknownVersion},
	{file: "kind-v2.toml", opts: PatchOptions{ContainerdMajor: 3}, version: 2, err: ErrContainerdVersion},
	{file: "managed-v2.toml", version: 2},
	{file: "marker-in-string-v2.toml", version: 2},
	{file: "conflict-v2.toml", version: 2, err: ErrConflict},
	{file: "conflict-v2.toml", opts: PatchOptions{Adopt: true}, version: 2},
	{file: "conflict-dotted-v3.toml", version: 3, err: ErrConflict},
	{file: "conflict-dotted-v3.toml", opts: PatchOptions{Adopt: true}, version: 3},
	{file: "k3s-config.toml.tmpl", err: ErrUnknownVersion},
	{file: "template-inline-action.toml.tmpl", opts: PatchOptions{DefaultVersion: 2}, err: ErrParse},
	{file: "inline-runtimes-v2.toml", version: 2, err: ErrUnsafeEdit},
	{file: "inline-plugin-v3.toml", version: 3, err: ErrUnsafeEdit},
	{file: "array-table-v2.toml", version: 2, err: ErrUnsafeEdit},
	{file: "damaged-block-v2.toml", version: 2, err: ErrUnsafeEdit},
	{file: "keyvalue-after-block-v2.toml", version: 2, err: ErrUnsafeEdit},
	{file: "version5.toml", err: ErrUnknownVersion},
	{file: "version-string.toml", err: ErrUnknownVersion},
	{file: "unparseable.toml", err: ErrParse},
}

// fileErr reports whether the fixture's error comes from the file alone (not parseable, unknown version),
// so that Version and RemoveRuntime fail too.
func (f fixture) fileErr() bool {
	return (errors.Is(f.err, ErrParse) || errors.Is(f.err, ErrUnknownVersion)) && f.opts.ContainerdMajor == 0
}

func (f fixture) name() string {
	n := f.file
	if f.opts.Adopt {
		n += ".adopt"
	}
	if f.opts.ContainerdMajor != 0 {
		n += fmt.Sprintf(".containerd%d", f.opts.ContainerdMajor)
	}
	if f.err != nil && f.opts.DefaultVersion == 0 && strings.HasSuffix(f.file, ".tmpl") {
		n += ".noversion"
	}
	return n
}

func readInput(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "input", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/golden/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Assert(t, filepath.Join("testdata", "golden", name), got, *update)
}

// hasMarker reports whether doc mentions any wasmkube marker, in which case add/remove need not be inverse.
func hasMarker(doc []byte) bool {
	return bytes.Contains(doc, []byte("# managed by wasmkube")) || bytes.Contains(doc, []byte("# adopted by wasmkube"))
}

// independentTree decodes doc with plain go-toml, template lines dropped.
func independentTree(t testing.TB, doc []byte) map[string]any {
	t.Helper()
	var clean []byte
	for _, l := range lines(doc) {
		if !isTemplateLine(trimEOL(l)) {
			clean = append(clean, l...)
		}
	}
	var tree map[string]any
	if err := toml.Unmarshal(clean, &tree); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, doc)
	}
	return tree
}

// independentLookup decodes doc with plain go-toml (template lines dropped) and returns the table at path.
func independentLookup(t testing.TB, doc []byte, path []string) any {
	t.Helper()
	v, ok := lookup(independentTree(t, doc), path)
	if !ok {
		t.Fatalf("output has no table at %v:\n%s", path, doc)
	}
	return v
}

func TestAddRuntime(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name(), func(t *testing.T) {
			t.Parallel()
			in := readInput(t, f.file)
			orig := bytes.Clone(in)
			out, err := AddRuntime(in, testRuntime, f.opts)
			if !bytes.Equal(in, orig) {
				t.Fatal("AddRuntime modified its input")
			}
			if f.err != nil {
				if !errors.Is(err, f.err) {
					t.Fatalf("err = %v, want %v", err, f.err)
				}
				if out != nil {
					t.Errorf("got output with an error:\n%s", out)
				}
				golden(t, f.name()+".err", []byte(err.Error()+"\n"))
				return
			}
			if err != nil {
				t.Fatalf("AddRuntime: %v", err)
			}
			golden(t, f.name(), out)

			v, err := Version(out, f.opts)
			if err != nil || v != f.version {
				t.Fatalf("Version(out) = %d, %v; want %d", v, err, f.version)
			}
			path, err := RuntimeTable(v, testRuntime.Handler)
			if err != nil {
				t.Fatal(err)
			}
			if f.plugin != "" {
				path[1] = f.plugin
			}
			if got := independentLookup(t, out, path); !reflect.DeepEqual(got, testRuntime.table()) {
				t.Errorf("table at %v = %#v, want %#v", path, got, testRuntime.table())
			}
			if owned, err := Owned(out, testRuntime.Handler, f.opts); err != nil || !owned {
				t.Errorf("Owned(out) = %v, %v; want true", owned, err)
			}
			again, err := AddRuntime(out, testRuntime, f.opts)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("AddRuntime is not idempotent (err %v):\n%s", err, again)
			}
			removed, err := RemoveRuntime(out, testRuntime.Handler, f.opts)
			if err != nil {
				t.Fatalf("RemoveRuntime: %v", err)
			}
			if owned, err := Owned(removed, testRuntime.Handler, f.opts); err != nil || owned {
				t.Errorf("Owned(removed) = %v, %v; want false", owned, err)
			}
			if !hasMarker(in) && !bytes.Equal(removed, in) {
				t.Errorf("RemoveRuntime(AddRuntime(x)) != x:\n--- got\n%q\n--- want\n%q", removed, in)
			}
			if !bytes.Contains(in, []byte("\r\n")) && bytes.Contains(out, []byte("\r\n")) ||
				bytes.Contains(in, []byte("\r\n")) && bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) {
				t.Errorf("line endings not kept:\n%q", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name(), func(t *testing.T) {
			t.Parallel()
			v, err := Version(readInput(t, f.file), f.opts)
			switch {
			case f.fileErr():
				if !errors.Is(err, f.err) {
					t.Fatalf("Version = %d, %v; want %v", v, err, f.err)
				}
			case err != nil || v != f.version:
				t.Fatalf("Version = %d, %v; want %d", v, err, f.version)
			}
		})
	}
	more := []struct {
		doc  string
		opts PatchOptions
		want int
		err  string
	}{
		{doc: "version = 1\n", want: 1},
		{doc: "version = 4\n", opts: PatchOptions{DefaultVersion: 2}, want: 4},
		{doc: "root = \"/x\"\n", opts: PatchOptions{DefaultVersion: 3}, want: 3},
		{doc: "root = \"/x\"\n", opts: PatchOptions{DefaultVersion: 7}, err: "default version: unknown containerd config version: version 7"},
		{doc: "version = 0\n", err: "version 0 (this build knows versions 1 to 4)"},
		{doc: "version = 5\n", err: "version 5 (this build knows versions 1 to 4)"},
		{doc: "version = 2.0\n", err: "version = 2 is not an integer"},
		{doc: "version = \"3\"\n", err: `version = "3" is not an integer`},
		{doc: "[plugins]\nversion = 9\n", want: 1}, // not the top-level key
	}
	for _, c := range more {
		v, err := Version([]byte(c.doc), c.opts)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrUnknownVersion) {
				t.Errorf("Version(%q) = %d, %v; want error containing %q", c.doc, v, err, c.err)
			}
			continue
		}
		if err != nil || v != c.want {
			t.Errorf("Version(%q) = %d, %v; want %d", c.doc, v, err, c.want)
		}
	}
}

func TestRuntimeTable(t *testing.T) {
	cases := []struct {
		version int
		handler string
		want    []string
		err     error
	}{
		{1, "wazero", []string{"plugins", "cri", "containerd", "runtimes", "wazero"}, nil},
		{2, "spin", []string{"plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "spin"}, nil},
		{3, "wazero", []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "wazero"}, nil},
		{4, "a-1", []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "a-1"}, nil},
		{0, "wazero", nil, ErrUnknownVersion},
		{5, "wazero", nil, ErrUnknownVersion},
		{2, "Wazero", nil, ErrInvalidRuntime},
		{2, "", nil, ErrInvalidRuntime},
		{2, "a.b", nil, ErrInvalidRuntime},
		{2, "-a", nil, ErrInvalidRuntime},
		{2, strings.Repeat("a", 64), nil, ErrInvalidRuntime},
	}
	for _, c := range cases {
		got, err := RuntimeTable(c.version, c.handler)
		if !errors.Is(err, c.err) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("RuntimeTable(%d, %q) = %v, %v; want %v, %v", c.version, c.handler, got, err, c.want, c.err)
		}
	}
}

func TestParseOption(t *testing.T) {
	cases := []struct {
		in   string
		want Option
		err  string // part of the error, "" for none
	}{
		{in: "SystemdCgroup=true", want: Option{"SystemdCgroup", true}},
		{in: "SystemdCgroup=false", want: Option{"SystemdCgroup", false}},
		{in: "IoUid=1000", want: Option{"IoUid", int64(1000)}},
		{in: "Offset=-3", want: Option{"Offset", int64(-3)}},
		{in: "Max=9223372036854775807", want: Option{"Max", int64(math.MaxInt64)}},
		{in: "Hex=0x10", want: Option{"Hex", int64(16)}},
		{in: "Ratio=0.25", want: Option{"Ratio", 0.25}},
		{in: "Big=1e6", want: Option{"Big", 1e6}},
		{in: "Inf=-inf", want: Option{"Inf", math.Inf(-1)}},
		{in: `Name="true"`, want: Option{"Name", "true"}},
		{in: `Quoted="a=b"`, want: Option{"Quoted", "a=b"}},
		{in: `Escapes="with \"quotes\", C:\\path\tand tab \u00e9"`, want: Option{"Escapes", "with \"quotes\", C:\\path\tand tab \u00e9"}},
		{in: `Literal='C:\path'`, want: Option{"Literal", `C:\path`}},
		{in: `Unicode="日本"`, want: Option{"Unicode", "日本"}},
		{in: `List=["a", 'b\c', "\""]`, want: Option{"List", []string{"a", `b\c`, `"`}}},
		{in: "EmptyList=[]", want: Option{"EmptyList", []string{}}},
		{in: "BinaryName=/usr/bin/runc", want: Option{"BinaryName", "/usr/bin/runc"}},
		{in: "Empty=", want: Option{"Empty", ""}},
		{in: "True=True", want: Option{"True", "True"}},
		{in: "Spaced=a b", want: Option{"Spaced", "a b"}},
		{in: "noequals", err: "not key=value"},
		{in: "=1", err: "non-empty"},
		{in: "Huge=99999999999999999999", err: "not a TOML value"},
		{in: "Version=1.2.3", err: `quote a string, e.g. "1.2.3"`},
		{in: "Date=1979-05-27", err: "LocalDate is not a supported option value"},
		{in: "Ints=[1, 2]", err: "arrays may hold only strings, element 0 is a integer"},
		{in: `Open="abc`, err: "not a TOML value"},
		{in: "Two=1 x", err: "not a TOML value"},
		{in: "Inject=\"a\"\nx = 2", err: "must be on one line"},
		{in: "Ctl\x01=1", err: "control characters"},
	}
	for _, c := range cases {
		got, err := ParseOption(c.in)
		if c.err != "" {
			if !errors.Is(err, ErrInvalidRuntime) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseOption(%q) = %v, %v; want ErrInvalidRuntime saying %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseOption(%q) = %#v, %v; want %#v", c.in, got, err, c.want)
			continue
		}
		if again, err := ParseOption(got.String()); err != nil || !again.Equal(got) {
			t.Errorf("ParseOption(%q.String() = %q) = %#v, %v", c.in, got.String(), again, err)
		}
	}
}

// FuzzOptionRoundTrip checks that every valid option survives String and ParseOption with its type and
// value: the path an option takes from the manager to the installer.
func FuzzOptionRoundTrip(f *testing.F) {
	f.Add("Key", uint8(0), "with \"quotes\", C:\\path, a\ttab, é", int64(0), 0.0)
	f.Add("K", uint8(2), "", int64(math.MinInt64), 0.5)
	f.Add("K", uint8(3), "", int64(0), math.Inf(1))
	f.Add("K", uint8(4), "a\x00b\x7f", int64(3), math.Copysign(0, -1))
	f.Fuzz(func(t *testing.T, key string, kind uint8, s string, i int64, x float64) {
		var v any
		switch kind % 5 {
		case 0:
			v = s
		case 1:
			v = i%2 == 0
		case 2:
			v = i
		case 3:
			v = x
		case 4:
			v = strings.Split(s, ",")
		}
		o := Option{Key: key, Value: v}
		if o.validate() != nil {
			return
		}
		got, err := ParseOption(o.String())
		if err != nil || !got.Equal(o) {
			t.Fatalf("ParseOption(%q) = %#v, %v; want %#v", o.String(), got, err, o)
		}
	})
}

func TestAddRuntimeInvalid(t *testing.T) {
	doc := []byte("version = 2\n")
	bad := []Runtime{
		{Handler: "wazero"},
		{Handler: "Wazero", Type: "t"},
		{Handler: "wazero", Type: "bad\ntype"},
		{Handler: "wazero", Type: "t", Path: "/x\n"},
		{Handler: "wazero", Type: "t", Options: []Option{{Key: "", Value: true}}},
		{Handler: "wazero", Type: "t", Options: []Option{{Key: "A", Value: []int{1}}}},
		{Handler: "wazero", Type: "t", Options: []Option{{Key: "A", Value: true}, {Key: "A", Value: false}}},
	}
	for _, rt := range bad {
		if out, err := AddRuntime(doc, rt, PatchOptions{}); !errors.Is(err, ErrInvalidRuntime) || out != nil {
			t.Errorf("AddRuntime(%+v) = %q, %v; want ErrInvalidRuntime", rt, out, err)
		}
	}
}

// TestUpdateInPlace changes the runtime twice: the block is rewritten where it is, and removal still
// restores the original.
func TestUpdateInPlace(t *testing.T) {
	in := readInput(t, "kind-v2.toml")
	first, err := AddRuntime(in, testRuntime, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Move the block before a table header in the middle, as someone editing the file might: the update
	// must stay there.
	block := first[len(in):]
	at := bytes.Index(in, []byte("[plugins.\"io.containerd.grpc.v1.cri\"]\n"))
	moved := append(append(bytes.Clone(in[:at]), block...), in[at:]...)
	changed := testRuntime
	changed.Type = "io.containerd.wazero.v2"
	changed.Path = ""
	changed.Options = []Option{{Key: "with space", Value: `quote " and \ backslash`}, {Key: "Inf", Value: math.Inf(-1)}}
	second, err := AddRuntime(moved, changed, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(second[at:], []byte(beginMarker("wazero"))) {
		t.Errorf("updated block moved:\n%s", second)
	}
	golden(t, "update-in-place.toml", second)
	got := independentLookup(t, second, []string{"plugins", pluginV2, "containerd", "runtimes", "wazero"})
	if !equalValues(got, changed.table()) {
		t.Errorf("table = %#v, want %#v", got, changed.table())
	}
	removed, err := RemoveRuntime(second, "wazero", PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(removed, in) {
		t.Errorf("remove after move and update:\n--- got\n%q\n--- want\n%q", removed, in)
	}
}

func TestRemoveRuntime(t *testing.T) {
	t.Run("no block leaves the document alone", func(t *testing.T) {
		in := readInput(t, "kind-v2.toml")
		out, err := RemoveRuntime(in, "wazero", PatchOptions{})
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("RemoveRuntime = %q, %v", out, err)
		}
	})
	t.Run("a foreign runtime of the same name stays", func(t *testing.T) {
		in := readInput(t, "conflict-v2.toml")
		out, err := RemoveRuntime(in, "wazero", PatchOptions{})
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("RemoveRuntime = %q, %v", out, err)
		}
	})
	t.Run("other handlers' blocks stay", func(t *testing.T) {
		in := readInput(t, "containerd17-v2.toml")
		spin := Runtime{Handler: "spin", Type: "io.containerd.spin.v2"}
		both, err := AddRuntime(in, spin, PatchOptions{})
		if err == nil {
			both, err = AddRuntime(both, testRuntime, PatchOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := RemoveRuntime(both, "spin", PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := AddRuntime(in, testRuntime, PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, want) {
			t.Errorf("removing spin touched wazero:\n%s", out)
		}
	})
	for _, f := range fixtures {
		if !f.fileErr() && f.file != "damaged-block-v2.toml" && f.file != "keyvalue-after-block-v2.toml" {
			continue
		}
		t.Run("fails on "+f.name(), func(t *testing.T) {
			if out, err := RemoveRuntime(readInput(t, f.file), "wazero", f.opts); !errors.Is(err, f.err) || out != nil {
				t.Fatalf("RemoveRuntime = %q, %v; want %v", out, err, f.err)
			}
		})
	}
}

func TestDropIn(t *testing.T) {
	for _, v := range []int{2, 3, 4} {
		out, err := DropIn(v, testRuntime)
		if err != nil {
			t.Fatalf("DropIn(%d): %v", v, err)
		}
		golden(t, "dropin-v"+string(rune('0'+v))+".toml", out)
		if got, err := Version(out, PatchOptions{}); err != nil || got != v {
			t.Errorf("Version(DropIn(%d)) = %d, %v", v, got, err)
		}
	}
	if _, err := DropIn(1, testRuntime); !errors.Is(err, ErrUnsafeEdit) {
		t.Errorf("DropIn(1) err = %v, want ErrUnsafeEdit", err)
	}
	if _, err := DropIn(5, testRuntime); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("DropIn(5) err = %v, want ErrUnknownVersion", err)
	}
}

// BenchmarkAddRuntime patches containerd 2.4's default config (280 lines), including the output check.
func BenchmarkAddRuntime(b *testing.B) {
	in := readInput(b, "containerd24-default-v4.toml")
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := AddRuntime(in, testRuntime, PatchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRestoreRuntime undoes one handler's edits while another handler's block and a person's edit stay,
// on a document without a final line break (the hardest case for the block's line breaks).
func TestRestoreRuntime(t *testing.T) {
	in := bytes.TrimSuffix(readInput(t, "kind-v2.toml"), []byte("\n"))
	before, err := AddRuntime(in, testRuntime, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withOther, err := AddRuntime(before, otherRuntime, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	edited := append([]byte("# a person's comment\n"), withOther...)
	changed, err := AddRuntime(edited, changedRuntime, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := RestoreRuntime(changed, before, testRuntime.Handler, PatchOptions{})
	if err != nil || !bytes.Equal(got, edited) {
		t.Errorf("RestoreRuntime after an update: %v\n got: %q\nwant: %q", err, got, edited)
	}
	// The block was removed meanwhile (say by hand): it comes back at the end, the other block stays.
	gone, err := RemoveRuntime(changed, testRuntime.Handler, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err = RestoreRuntime(gone, before, testRuntime.Handler, PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, before[len(in)+1:]) || !bytes.HasSuffix(got, before[len(in)+1:]) {
		t.Errorf("block not appended as it was:\n%s", got)
	}
	if tbl := independentLookup(t, got, []string{"plugins", pluginV2, "containerd", "runtimes", "spin"}); !equalValues(tbl, otherRuntime.table()) {
		t.Errorf("other handler's table = %#v", tbl)
	}
	// Nothing to restore from: the block goes.
	if got, err := RestoreRuntime(changed, nil, testRuntime.Handler, PatchOptions{}); err != nil || bytes.Contains(got, []byte(beginMarker(testRuntime.Handler))) {
		t.Errorf("RestoreRuntime without a block before: %v\n%s", err, got)
	}
	if _, err := RestoreRuntime(changed, []byte("version = 2\n[x\n"), testRuntime.Handler, PatchOptions{}); !errors.Is(err, ErrParse) {
		t.Errorf("unparseable earlier config: %v", err)
	}
}
