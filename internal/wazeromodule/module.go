package wazeromodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/go-digest"
)

// ErrNotWasm: the file or blob is not a WebAssembly binary.
var ErrNotWasm = errors.New("not a WebAssembly binary")

// ErrNoModule: neither the rootfs nor the image holds the container's module.
var ErrNoModule = errors.New("no WebAssembly module found")

// magic is the first four bytes of every WebAssembly binary.
var magic = []byte{0x00, 'a', 's', 'm'}

// Source is a module's bytes and where they came from.
type Source struct {
	Wasm   []byte
	Origin string // e.g. "rootfs /app.wasm" or "image docker.io/library/x:1 layer sha256:..."

	// digest returns the sha256 of Wasm, hashing it on first use only: wazero hashes the module
	// again while compiling, so callers can hash concurrently with that or not at all.
	digest func() digest.Digest
}

// Digest returns the sha256 of Wasm (computed once, on the first call; safe for concurrent use).
func (s *Source) Digest() digest.Digest { return s.digest() }

// ParseEntry splits args[0] into the module's path and the function to call (runwasi's "path#func");
// fn is empty when args[0] names none.
func ParseEntry(arg0 string) (modulePath, fn string) {
	modulePath, fn, _ = strings.Cut(arg0, "#")
	return modulePath, fn
}

// FromRootfs reads the module at modulePath inside rootfs. Symbolic links are resolved as inside the
// container (an absolute link target starts at rootfs), never escaping it. It returns an error wrapping os.ErrNotExist when there is no such file and
// ErrNotWasm when the file is not a WebAssembly binary.
func FromRootfs(rootfs, modulePath string) (*Source, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer root.Close()
	if strings.TrimPrefix(path.Clean("/"+modulePath), "/") == "" {
		return nil, fmt.Errorf("module path %q: %w", modulePath, os.ErrNotExist)
	}
	// Resolve links the container's way, then open through os.Root so that a link swapped in
	// meanwhile still cannot lead outside.
	resolved, err := securejoin.SecureJoin(rootfs, modulePath)
	if err != nil {
		return nil, fmt.Errorf("resolve module %s in rootfs %s: %w", modulePath, rootfs, err)
	}
	rel, err := filepath.Rel(rootfs, resolved)
	if err != nil {
		return nil, fmt.Errorf("resolve module %s in rootfs %s: %w", modulePath, rootfs, err)
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("open module %s in rootfs %s: %w", modulePath, rootfs, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat module %s: %w", modulePath, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("module %s in rootfs %s is not a regular file: %w", modulePath, rootfs, ErrNotWasm)
	}
	// One buffer of the file's size: growing one while reading costs copies and, in a freshly
	// started shim, page faults on every new buffer (about 10 ms for a 3 MB module).
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read module %s in rootfs %s (%d bytes): %w", modulePath, rootfs, st.Size(), err)
	}
	return newSource(b, "rootfs "+modulePath, sync.OnceValue(func() digest.Digest { return digest.FromBytes(b) }))
}

func newSource(b []byte, origin string, dgst func() digest.Digest) (*Source, error) {
	if !bytes.HasPrefix(b, magic) {
		return nil, fmt.Errorf("%s: %w (it does not start with \\0asm)", origin, ErrNotWasm)
	}
	return &Source{Wasm: b, Origin: origin, digest: dgst}, nil
}
