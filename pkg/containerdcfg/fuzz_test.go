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
		if hasMarker(doc) || adopt {
			return
		}
		// A second handler's block survives the first one's removal and the undo of its update. (Not
		// with adoption: un-commenting an adopted runtime can make the document define runtimes again,
		// while the block of 1.x's default runtime stays for the second handler.)
		withOther, err := AddRuntime(out, otherRuntime, opts)
		if err != nil {
			return // e.g. a foreign runtime of the other handler's name
		}
		onlyOther, err := AddRuntime(doc, otherRuntime, opts)
		if err != nil {
			return // e.g. a version 2 document without runtimes, which only the first block made safe
		}
		if got, err := RemoveRuntime(withOther, testRuntime.Handler, opts); err != nil || !bytes.Equal(got, onlyOther) {
			t.Fatalf("removing the first of two blocks: %v\n got: %q\nwant: %q", err, got, onlyOther)
		}
		if got, err := RestoreRuntime(withOther, doc, testRuntime.Handler, opts); err != nil || !bytes.Equal(got, onlyOther) {
			t.Fatalf("RestoreRuntime to before the first block: %v\n got: %q\nwant: %q", err, got, onlyOther)
		}
		changed, err := AddRuntime(withOther, changedRuntime, opts)
		if err != nil {
			t.Fatalf("updating the first block: %v", err)
		}
		if got, err := RestoreRuntime(changed, out, testRuntime.Handler, opts); err != nil || !bytes.Equal(got, withOther) {
			t.Fatalf("RestoreRuntime after an update: %v\n got: %q\nwant: %q", err, got, withOther)
		}
	})
}

// otherRuntime is a second handler beside testRuntime; changedRuntime is testRuntime updated.
var (
	otherRuntime = Runtime{Handler: "spin", Type: "/opt/wasmkube/bin/containerd-shim-spin-v2",
		Options: []Option{{Key: "Args", Value: []string{"a", "b c"}}}}
	changedRuntime = Runtime{Handler: testRuntime.Handler, Type: "/opt/wasmkube/bin/containerd-shim-wazero-v1",
		Options: []Option{{Key: "LogLevel", Value: "debug\t\"x\""}}}
)
