package containerdcfg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzPatch checks the patcher's laws on arbitrary documents: whatever AddRuntime accepts, it returns a
// document that parses with the handler's table, where every containerd generation that reads it looks,
// holding exactly the runtime;
// adding again changes nothing; removing gives back the input byte for byte (unless the input already
// carried wasmkube markers); the input is never modified; failures are the documented sentinels, never
// a failed output check. Seeds: testdata/fuzz/FuzzPatch plus every fixture under testdata/input.
func FuzzPatch(f *testing.F) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "input", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 0, false)
		f.Add(b, 9, true)
	}
	f.Fuzz(func(t *testing.T, doc []byte, defaultVersion int, adopt bool) {
		opts := PatchOptions{DefaultVersion: defaultVersion % 6, Adopt: adopt, ContainerdMajor: defaultVersion / 6 % 3}
		orig := bytes.Clone(doc)
		out, err := AddRuntime(doc, testRuntime, opts)
		if !bytes.Equal(doc, orig) {
			t.Fatal("AddRuntime modified its input")
		}
		if err != nil {
			if errors.Is(err, errOutputCheck) {
				t.Fatalf("AddRuntime produced a document that failed its own check: %v", err)
			}
			if !errors.Is(err, ErrParse) && !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrUnsafeEdit) && !errors.Is(err, ErrContainerdVersion) {
				t.Fatalf("AddRuntime error without a sentinel: %v", err)
			}
			if out != nil {
				t.Fatal("AddRuntime returned a document with an error")
			}
			return
		}
		v, err := Version(out, opts)
		if err != nil {
			t.Fatalf("Version(out): %v", err)
		}
		if vin, err := Version(doc, opts); err != nil || vin != v {
			t.Fatalf("version changed: %d (%v) -> %d", vin, err, v)
		}
		majors, err := readers(opts.ContainerdMajor, v)
		if err != nil {
			t.Fatal(err)
		}
		tree := independentTree(t, out)
		for _, major := range majors {
			path := append(runtimesTable(tree, v, major), testRuntime.Handler)
			if got, _ := lookup(tree, path); !equalValues(got, testRuntime.table()) {
				t.Fatalf("containerd %d.x reads %v = %#v, want %#v", major, path, got, testRuntime.table())
			}
		}
		again, err := AddRuntime(out, testRuntime, opts)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("AddRuntime not idempotent: %v\n%q\n%q", err, out, again)
		}
		removed, err := RemoveRuntime(out, testRuntime.Handler, opts)
		if err != nil {
			t.Fatalf("RemoveRuntime: %v", err)
		}
		if !hasMarker(doc) && !bytes.Equal(removed, doc) {
			t.Fatalf("RemoveRuntime(AddRuntime(x)) != x\nx:   %q\nout: %q\ngot: %q", doc, out, removed)
		}
	})
}
