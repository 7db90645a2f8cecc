package shimsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// BuiltinNames lists the names a Shim may use for source.builtin, sorted.
func BuiltinNames() []string { return []string{"wazero"} }

// BuiltinBinary returns the file name of a builtin shim in the installer image, e.g. "wazero" ->
// "containerd-shim-wazero-v1".
func BuiltinBinary(name string) (string, bool) {
	switch name {
	case "wazero":
		return "containerd-shim-wazero-v1", true
	}
	return "", false
}

// Builtin copies a shim shipped with the caller (the installer image's own directory).
type Builtin struct {
	// Dir holds the builtin binaries.
	Dir string
	// Name is a builtin name, see BuiltinNames.
	Name string
}

// Fetch copies Dir/<binary> into destDir under the same name. The binary was built for the
// caller's platform, so any other p fails with ErrNoPlatform.
func (b Builtin) Fetch(_ context.Context, p Platform, destDir string) (Artifact, error) {
	bin, ok := BuiltinBinary(b.Name)
	if !ok {
		return Artifact{}, fmt.Errorf("builtin shim %q is unknown (known: %s): %w",
			b.Name, strings.Join(BuiltinNames(), ", "), ErrNotFound)
	}
	if host := HostPlatform(); Match([]Platform{host}, p) < 0 {
		return Artifact{}, fmt.Errorf("builtin shim %q is built for %s, not %s: %w", b.Name, host, p, ErrNoPlatform)
	}
	src := filepath.Join(b.Dir, bin)
	f, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return Artifact{}, fmt.Errorf("builtin shim %q: %s is missing from this installer image: %w", b.Name, src, ErrNotFound)
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("builtin shim %q: %w", b.Name, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return Artifact{}, fmt.Errorf("builtin shim %q: %s is not a regular file", b.Name, src)
	}
	st, err := newStaged(destDir, bin)
	if err != nil {
		return Artifact{}, fmt.Errorf("builtin shim %q: %w", b.Name, err)
	}
	defer st.discard()
	if err := st.fillFile(f, maxBytes(0), src); err != nil {
		return Artifact{}, fmt.Errorf("builtin shim %q: %w", b.Name, err)
	}
	file, err := st.commit()
	if err != nil {
		return Artifact{}, fmt.Errorf("builtin shim %q: %w", b.Name, err)
	}
	sum := st.sum()
	return Artifact{File: file, SHA256: sum, Digest: "sha256:" + sum, Platform: HostPlatform(), Source: "builtin:" + b.Name}, nil
}
