package distro

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// hostFS reads files of a host mounted at root. Paths are host paths; symbolic links are resolved
// inside root the way the kernel's RESOLVE_IN_ROOT does (github.com/cyphar/filepath-securejoin): an
// absolute link target starts again at root and ".." stops at root, so a link never leads out of the
// host's tree into the installer's own filesystem. (os.Root cannot serve here: it refuses absolute
// links, which hosts use, e.g. /var/run -> /run.)
type hostFS struct {
	root string
}

// resolve returns the path under root that the host path p names, after following links. Components
// that do not exist are taken as they are.
func (h hostFS) resolve(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	root, err := filepath.Abs(h.root)
	if err != nil {
		return "", err
	}
	return securejoin.SecureJoin(root, p)
}

// absent reports whether err means that a path does not exist (a missing component, or a file where
// a directory was expected).
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// stat returns the file info of host path p; ok is false when p does not exist.
func (h hostFS) stat(p string) (fi fs.FileInfo, ok bool, err error) {
	real, err := h.resolve(p)
	if err == nil {
		fi, err = os.Stat(real)
	}
	switch {
	case err == nil:
		return fi, true, nil
	case absent(err):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("inspect %s under host root %s: %w", p, h.root, err)
}

// readFile reads host path p; ok is false when p does not exist.
func (h hostFS) readFile(p string) (data []byte, ok bool, err error) {
	real, err := h.resolve(p)
	if err == nil {
		data, err = os.ReadFile(real)
	}
	switch {
	case err == nil:
		return data, true, nil
	case absent(err):
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("read %s under host root %s: %w", p, h.root, err)
}

// readOnly reports whether host path p, or the nearest ancestor of it that exists, lies on a file system
// mounted read-only (a new file cannot be created beside p).
func (h hostFS) readOnly(p string) (bool, error) {
	for {
		real, err := h.resolve(p)
		if err != nil {
			return false, fmt.Errorf("inspect %s under host root %s: %w", p, h.root, err)
		}
		var st unix.Statfs_t
		err = unix.Statfs(real, &st)
		if absent(err) && p != "/" {
			p = filepath.Dir(p)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("inspect the file system of %s under host root %s: %w", p, h.root, err)
		}
		return st.Flags&unix.ST_RDONLY != 0, nil
	}
}
