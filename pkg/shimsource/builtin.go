package shimsource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wasmkube/wasmkube/pkg/platform"
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
func (b Builtin) Fetch(ctx context.Context, p platform.Platform, destDir string) (Artifact, error) {
	return finish(b.Stage(ctx, p, destDir))
}

// Stage copies the binary as Fetch does and returns once the copy is complete and the source was
// unchanged during it. The sha256 of the copy, which only records the binary (a builtin has no
// checksum to verify), may still run then; Finish waits for it.
func (b Builtin) Stage(_ context.Context, p platform.Platform, destDir string) (*Staged, error) {
	bin, ok := BuiltinBinary(b.Name)
	if !ok {
		return nil, fmt.Errorf("builtin shim %q is unknown (known: %s): %w",
			b.Name, strings.Join(BuiltinNames(), ", "), ErrNotFound)
	}
	if host := platform.Host(); platform.Match([]platform.Platform{host}, p) < 0 {
		return nil, fmt.Errorf("builtin shim %q is built for %s, not %s: %w", b.Name, host, p, ErrNoPlatform)
	}
	what := fmt.Sprintf("builtin shim %q", b.Name)
	src := filepath.Join(b.Dir, bin)
	f, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %s is missing from this installer image: %w", what, src, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", what, src)
	}
	st, err := newStaged(destDir, bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer st.discard()
	if err := st.fillFile(f, maxBytes(0), src); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return st.handOver(Artifact{Platform: platform.Host(), Source: "builtin:" + b.Name}, what), nil
}
