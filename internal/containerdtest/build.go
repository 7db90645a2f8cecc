package containerdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// artifacts memoises built files per test process: key -> path (or error).
type artifacts struct {
	mu    sync.Mutex
	built map[string]*artifact
}

type artifact struct {
	once sync.Once
	path string
	err  error
}

// cache is the per-process memo behind Build and the pause image. It only ever points at files in
// the persistent, content-addressed cache below, so sharing it between tests is safe.
var cache = &artifacts{built: map[string]*artifact{}}

func (a *artifacts) get(key string, make func() (string, error)) (string, error) {
	a.mu.Lock()
	e, ok := a.built[key]
	if !ok {
		e = &artifact{}
		a.built[key] = e
	}
	a.mu.Unlock()
	e.once.Do(func() { e.path, e.err = make() })
	return e.path, e.err
}

// cacheDir is where built helper binaries and images are kept across test runs:
// $WASMKUBE_CACHE_DIR/testbin (the tool cache root that `hack/tools.sh env` exports).
func cacheDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(testenv.Path(t, testenv.EnvCacheDir), "testbin")
}

// Build compiles the main package pkg (an import path or a directory, as `go build` takes it) into a
// static binary and returns its path. The package must import only the standard library: the cache key
// is the Go version, the platform and the contents of the package's own .go files. A binary is built
// once per key (kept in $WASMKUBE_CACHE_DIR/testbin) and looked up once per test process.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	path, err := BuildIn(cacheDir(t), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func buildCached(dir, pkg string) (string, error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}\n{{.Name}}\n{{join .GoFiles \"\\n\"}}", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w", pkg, exitDetail(err))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 || lines[1] != "main" {
		return "", fmt.Errorf("build %s: not a main package (go list said %q)", pkg, out)
	}
	srcDir, files := lines[0], lines[2:]
	slices.Sort(files)
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, f := range files {
		if err := hashFile(h, filepath.Join(srcDir, f)); err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	dst := filepath.Join(dir, filepath.Base(srcDir)+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	// Rename is atomic: concurrent test processes may race here, and either result is the same binary.
	if err := os.Rename(bin, dst); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return dst, nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "%s\n", filepath.Base(path))
	_, err = io.Copy(w, f)
	return err
}

// exitDetail adds a command's stderr to its error.
func exitDetail(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
