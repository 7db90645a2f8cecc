package containerdcfg

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// source is one entry of testdata/corpus/SOURCES.toml.
type source struct {
	File            string `toml:"file"`
	Repository      string `toml:"repository"`
	Path            string `toml:"path"`
	Commit          string `toml:"commit"`
	Blob            string `toml:"blob"`
	Rendered        string `toml:"rendered"`
	Mode            string `toml:"mode"`
	TemplateVersion int    `toml:"template_version"`
}

func readCorpus(t *testing.T) []source {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "corpus", "SOURCES.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Source []source `toml:"source"`
	}
	if err := toml.Unmarshal(b, &m); err != nil {
		t.Fatalf("SOURCES.toml: %v", err)
	}
	return m.Source
}

// TestCorpusProvenance checks that every corpus file has its provenance recorded, every recorded file
// exists, and the files taken verbatim still hash to their repository's git blob.
func TestCorpusProvenance(t *testing.T) {
	sources := readCorpus(t)
	listed := map[string]bool{"SOURCES.toml": true}
	for _, s := range sources {
		listed[s.File] = true
		if s.Repository == "" || s.Path == "" || s.Commit == "" {
			t.Errorf("%s: repository, path and commit are required", s.File)
		}
		if s.Blob == "" && s.Rendered == "" && s.Mode == "" {
			t.Errorf("%s: neither a blob id (verbatim) nor what was rendered", s.File)
		}
		data, err := os.ReadFile(filepath.Join("testdata", "corpus", s.File))
		if err != nil {
			t.Error(err)
			continue
		}
		if s.Blob != "" {
			h := sha1.New()
			fmt.Fprintf(h, "blob %d\x00", len(data))
			h.Write(data)
			if got := hex.EncodeToString(h.Sum(nil)); got != s.Blob {
				t.Errorf("%s: git blob %s, SOURCES.toml records %s", s.File, got, s.Blob)
			}
		}
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "corpus"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !listed[e.Name()] {
			t.Errorf("%s has no entry in SOURCES.toml", e.Name())
		}
	}
}

// TestVendorCorpus patches every vendor file for containerd 1.x and 2.x and loads it, before and after,
// into real containerd 1.6 and 2.4.2 (`config dump`): the handler is there with its runtime_type, path
// and options, nothing else in the dump changes (no runtime lost, no unknown-key warning added), and
// RemoveRuntime gives the file back byte for byte. containerd 1.x must refuse files of version 3 and
// later, which it cannot read. k3s/rke2 files are bases: the template `{{ template "base" . }}` is
// patched and rendered with the file in its place.
func TestVendorCorpus(t *testing.T) {
	testenv.Integration(t)
	for _, cd := range containerds(t) {
		for _, s := range readCorpus(t) {
			t.Run(fmt.Sprintf("%s/%s", cd.name, s.File), func(t *testing.T) {
				t.Parallel()
				base, err := os.ReadFile(filepath.Join("testdata", "corpus", s.File))
				if err != nil {
					t.Fatal(err)
				}
				opts := PatchOptions{ContainerdMajor: cd.major, DefaultVersion: s.TemplateVersion}
				in := base
				if s.Mode == "template" {
					in = []byte("{{ template \"base\" . }}\n")
				}
				version, err := Version(base, PatchOptions{})
				if err != nil {
					t.Fatal(err)
				}
				out, err := AddRuntime(in, testRuntime, opts)
				if !slices.Contains(cd.versions, version) {
					if !errors.Is(err, ErrUnknownVersion) {
						t.Fatalf("AddRuntime for %s of a version %d file: err = %v, want ErrUnknownVersion", cd.name, version, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("AddRuntime: %v", err)
				}
				removed, err := RemoveRuntime(out, testRuntime.Handler, opts)
				if err != nil || !bytes.Equal(removed, in) {
					t.Fatalf("RemoveRuntime(AddRuntime(x)) != x (err %v):\n%s", err, removed)
				}
				if s.Mode == "template" {
					out = bytes.Replace(out, in, base, 1)
				}
				path := filepath.Join(t.TempDir(), "config.toml")
				before, warnBefore := dump(t, cd.bin, path, base)
				after, warnAfter := dump(t, cd.bin, path, out)
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
					t.Fatalf("%s's dump has no runtime %s at %v:\n%s", cd.name, testRuntime.Handler, table, out)
				}
				checkRuntime(t, got.(map[string]any), testRuntime)
				runtimes, _ := lookup(after, table[:len(table)-1])
				delete(runtimes.(map[string]any), testRuntime.Handler)
				if d := treeDiff(before, after, ""); len(d) > 0 {
					t.Errorf("dumps differ beyond runtime %s at %q", testRuntime.Handler, d)
				}
			})
		}
	}
}
