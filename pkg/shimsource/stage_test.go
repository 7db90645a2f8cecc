package shimsource

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRemoveStale(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	files := []struct {
		name string
		old  bool
		gone bool
	}{
		{name: tempPrefix + "containerd-shim-spin-v2-123.tmp", old: true, gone: true},
		{name: tempPrefix + "shim.tar.gz-9.tmp", old: true, gone: true},
		{name: tempPrefix + "containerd-shim-spin-v2-456.tmp"}, // a Fetch still running
		{name: "containerd-shim-spin-v2", old: true},           // an installed binary
		{name: tempPrefix + "notes", old: true},                // not ours: no .tmp suffix
		{name: "containerd-shim-spin-v2.tmp", old: true},       // not ours: no prefix
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if f.old {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	removed, err := RemoveStale(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		_, statErr := os.Stat(filepath.Join(dir, f.name))
		if gone := os.IsNotExist(statErr); gone != f.gone {
			t.Errorf("%s: removed %t, want %t", f.name, gone, f.gone)
		}
		if slices.Contains(removed, f.name) != f.gone {
			t.Errorf("%s: reported %t, want %t", f.name, !f.gone, f.gone)
		}
	}
	if _, err := RemoveStale(filepath.Join(dir, "absent"), time.Hour); err == nil {
		t.Error("RemoveStale on a missing directory succeeded")
	}
}
