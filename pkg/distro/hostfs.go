package distro

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symbolic link resolution, as the kernel does (ELOOP).
const maxSymlinks = 40

// hostFS reads files of a host mounted at root. Paths are host paths; symbolic links are resolved
// inside root (an absolute link target starts again at root, ".." stops at root), so a link never
// leads out of the host's tree into the installer's own filesystem.
type hostFS struct {
	root string
}

// resolve returns the path under root that the host path p names, after following links.
func (h hostFS) resolve(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	pending := strings.Split(p, "/")
	cur := "/"
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(h.root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(filepath.Join(h.root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return filepath.Join(h.root, cur), nil
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
		if absent(err) && p != "/" {
			p = filepath.Dir(p)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("inspect %s under host root %s: %w", p, h.root, err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(real, &st); err != nil {
			return false, fmt.Errorf("inspect the file system of %s under host root %s: %w", p, h.root, err)
		}
		return st.Flags&unix.ST_RDONLY != 0, nil
	}
}
