// Package goldenfile compares test output with golden files under a package's testdata, and rewrites them
// when the test runs with -update (each test package declares its own -update flag).
package goldenfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Assert compares got with the file at path; with update it writes got there instead (creating
// missing directories), so the change shows up in `git diff` for review.
func Assert(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking the change)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
