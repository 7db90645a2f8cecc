package nodeinstaller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteResultFile(t *testing.T) {
	t.Parallel()
	if err := writeResultFile("", []byte("x")); err != nil {
		t.Errorf("empty path: %v", err)
	}
	p := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(p, []byte("old content that is longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeResultFile(p, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != `{"a":1}` {
		t.Errorf("file holds %q", b)
	}
	if err := writeResultFile(filepath.Join(p, "sub"), []byte("x")); err == nil || !strings.Contains(err.Error(), "--result-file") {
		t.Errorf("unwritable path: %v", err)
	}
}
