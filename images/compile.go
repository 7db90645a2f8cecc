package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wasmkube/wasmkube/internal/version"
)

// ErrMissingPackage means a binary's main package is not in the source tree (yet).
var ErrMissingPackage = errors.New("main package not found")

// LDFlags are the linker flags of every image binary: no symbol table, no DWARF, no build ID.
const LDFlags = "-s -w -buildid="

// Compiler cross-compiles static Go binaries reproducibly.
type Compiler struct {
	// Go is the go command; "go" when empty.
	Go string
	// ModuleDir is the root of the Go module the packages are relative to.
	ModuleDir string
	// Version is stamped into the binaries for --version (internal/version); empty leaves the
	// toolchain's module version.
	Version string
}

// Compile builds pkg (relative to the module root, e.g. ./cmd/manager) for platform into out. The build
// is static (CGO_ENABLED=0), uses -trimpath, -buildvcs=false and LDFlags (plus the Version stamp), and pins GOAMD64/GOARM64 to
// the baseline so the caller's environment cannot change the bytes. A package directory without Go
// files fails with ErrMissingPackage.
func (c Compiler) Compile(ctx context.Context, pkg string, platform v1.Platform, out string) error {
	dir := filepath.Join(c.ModuleDir, filepath.FromSlash(pkg))
	if goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(goFiles) == 0 {
		return fmt.Errorf("compile %s: %w: %s holds no Go files; build it before packaging it into an image",
			pkg, ErrMissingPackage, dir)
	}
	goCmd := c.Go
	if goCmd == "" {
		goCmd = "go"
	}
	ldflags := LDFlags
	if c.Version != "" {
		ldflags += " -X " + version.Variable + "=" + c.Version
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags="+ldflags, "-o", out, pkg)
	cmd.Dir = c.ModuleDir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0",
		"GOOS="+platform.OS,
		"GOARCH="+platform.Architecture,
		"GOAMD64=v1",
		"GOARM64=v8.0",
		"GOFLAGS=-mod=readonly",
		"GOEXPERIMENT=",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compile %s for %s: %w\n%s", pkg, platform.String(), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
