package wazeromodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/wasmkube/wasmkube/internal/wazerofs"
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

// FromRootfs reads the module at modulePath inside rootfs. The path is resolved as inside the
// container, by the kernel (internal/wazerofs: an absolute link target starts at rootfs, ".." stops
// there), so it never leads outside. It returns an error wrapping os.ErrNotExist when there is no
// such file and ErrNotWasm when the file is not a WebAssembly binary (a directory, FIFO or device
// node included: none of them is opened for reading).
func FromRootfs(rootfs, modulePath string) (*Source, error) {
	if strings.TrimPrefix(path.Clean("/"+modulePath), "/") == "" {
		return nil, fmt.Errorf("module path %q: %w", modulePath, os.ErrNotExist)
	}
	root, err := wazerofs.Open(rootfs, wazerofs.Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	notFound := func(what string, e experimentalsys.Errno) error {
		if e == experimentalsys.ENOENT || e == experimentalsys.ENOTDIR || e == experimentalsys.ELOOP {
			return fmt.Errorf("%s module %s in rootfs %s: %w (%v)", what, modulePath, rootfs, os.ErrNotExist, e)
		}
		return fmt.Errorf("%s module %s in rootfs %s: %w", what, modulePath, rootfs, e)
	}
	if st, e := root.Stat(modulePath); e != 0 {
		return nil, notFound("find", e)
	} else if !st.Mode.IsRegular() {
		return nil, fmt.Errorf("module %s in rootfs %s is not a regular file: %w", modulePath, rootfs, ErrNotWasm)
	}
	// Non-blocking, in case a FIFO was swapped in since the check; the file is checked again.
	f, e := root.OpenFile(modulePath, experimentalsys.O_RDONLY|experimentalsys.O_NONBLOCK, 0)
	if e != 0 {
		return nil, notFound("open", e)
	}
	defer f.Close()
	st, e := f.Stat()
	if e != 0 {
		return nil, fmt.Errorf("stat module %s: %w", modulePath, e)
	} else if !st.Mode.IsRegular() {
		return nil, fmt.Errorf("module %s in rootfs %s is not a regular file: %w", modulePath, rootfs, ErrNotWasm)
	}
	// One buffer of the file's size: growing one while reading costs copies and, in a freshly
	// started shim, page faults on every new buffer (about 10 ms for a 3 MB module).
	b := make([]byte, st.Size)
	for n := 0; n < len(b); {
		m, e := f.Read(b[n:])
		if e != 0 {
			return nil, fmt.Errorf("read module %s in rootfs %s (%d of %d bytes): %w", modulePath, rootfs, n, len(b), e)
		} else if m == 0 {
			return nil, fmt.Errorf("read module %s in rootfs %s (%d of %d bytes): %w", modulePath, rootfs, n, len(b), io.ErrUnexpectedEOF)
		}
		n += m
	}
	return newSource(b, "rootfs "+modulePath, sync.OnceValue(func() digest.Digest { return digest.FromBytes(b) }))
}

func newSource(b []byte, origin string, dgst func() digest.Digest) (*Source, error) {
	if !bytes.HasPrefix(b, magic) {
		return nil, fmt.Errorf("%s: %w (it does not start with \\0asm)", origin, ErrNotWasm)
	}
	return &Source{Wasm: b, Origin: origin, digest: dgst}, nil
}
