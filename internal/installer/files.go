package installer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Files are the file operations the transaction performs on the host. Every path is a host path (as
// containerd sees it, e.g. /etc/containerd/config.toml); the implementation maps it below the host root.
type Files interface {
	// ReadFile returns a file's content; a missing file gives an error matching fs.ErrNotExist.
	ReadFile(path string) ([]byte, error)
	// Stat describes a file.
	Stat(path string) (fs.FileInfo, error)
	// WriteFile replaces a file atomically: temp file in the same directory, fsync, rename, fsync of
	// the directory. A file it replaces keeps its owner, group, mode and extended attributes (an
	// SELinux label, ACLs); a new file gets perm. Missing parent directories are created.
	WriteFile(path string, data []byte, perm fs.FileMode) error
	// RemoveTemps removes the temporary files that an interrupted WriteFile of path left beside it.
	// Only call it while no WriteFile of path can run (under the node lock).
	RemoveTemps(path string) error
	// Rename moves a file within one filesystem, atomically, and syncs the target directory.
	Rename(from, to string) error
	// Remove deletes a file or an empty directory; a missing one is not an error.
	Remove(path string) error
	// RemoveAll deletes a tree; a missing one is not an error.
	RemoveAll(path string) error
	// Chmod changes a file's mode.
	Chmod(path string, perm fs.FileMode) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(path string, perm fs.FileMode) error
	// HostPath returns where a host path is in this process's filesystem (for handing to a fetcher).
	HostPath(path string) (string, error)
}

// DirFS is Files rooted at a directory: the node's root mounted into the installer's pod (/host), or
// a temporary directory in tests.
type DirFS struct {
	// Root is the host root; "/" when the installer runs directly on the host.
	Root string
}

var _ Files = DirFS{}

// HostPath returns path below the root, with symbolic links resolved as the host would resolve them
// (github.com/cyphar/filepath-securejoin, like the kernel's RESOLVE_IN_ROOT): an absolute link target
// is taken relative to the root and ".." stops at the root, so a host's
// /etc/containerd/config.toml -> /etc/containerd/real.toml is followed inside the host root (and a
// write replaces the target, keeping the link), while no link leads out of it. Components that do not
// exist are taken as they are. The path is cleaned lexically first (/a/../b is /b).
func (d DirFS) HostPath(path string) (string, error) {
	root, err := filepath.Abs(d.Root)
	if err != nil {
		return "", err
	}
	full, err := securejoin.SecureJoin(root, filepath.Clean("/"+path))
	if err != nil {
		return "", fmt.Errorf("resolve %s under host root %s: %w", path, d.Root, err)
	}
	return full, nil
}

// ReadFile implements Files.
func (d DirFS) ReadFile(path string) ([]byte, error) {
	full, err := d.HostPath(path)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(full)
}

// Stat implements Files.
func (d DirFS) Stat(path string) (fs.FileInfo, error) {
	full, err := d.HostPath(path)
	if err != nil {
		return nil, err
	}
	return os.Stat(full)
}

// MkdirAll implements Files.
func (d DirFS) MkdirAll(path string, perm fs.FileMode) error {
	return d.do(path, func(full string) error { return os.MkdirAll(full, perm) })
}

// Chmod implements Files.
func (d DirFS) Chmod(path string, perm fs.FileMode) error {
	return d.do(path, func(full string) error { return os.Chmod(full, perm) })
}

// Remove implements Files.
func (d DirFS) Remove(path string) error {
	return d.do(path, func(full string) error {
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return syncDir(filepath.Dir(full))
	})
}

// RemoveAll implements Files.
func (d DirFS) RemoveAll(path string) error { return d.do(path, os.RemoveAll) }

// do runs op on the resolved path.
func (d DirFS) do(path string, op func(full string) error) error {
	full, err := d.HostPath(path)
	if err != nil {
		return err
	}
	return op(full)
}

// tempPrefix is the name prefix of WriteFile's temporary files for a file named base.
func tempPrefix(base string) string { return "." + base + ".wasmkube-" }

// WriteFile implements Files.
func (d DirFS) WriteFile(path string, data []byte, perm fs.FileMode) error {
	full, err := d.HostPath(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := os.Stat(full)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix(filepath.Base(full))+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if old != nil {
		err = keepMetadata(f, full, old)
	} else {
		err = f.Chmod(perm)
	}
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, full); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// keepMetadata gives f the owner, group, mode and extended attributes of the file it replaces.
func keepMetadata(f *os.File, file string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("read the owner of %s: no stat data", file)
	}
	// chown first: it clears set-user-ID and set-group-ID bits that chmod then sets again.
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("keep the owner %d:%d of %s: %w", st.Uid, st.Gid, file, err)
	}
	if err := f.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		return fmt.Errorf("keep the mode %s of %s: %w", fi.Mode(), file, err)
	}
	names, err := xattrNames(file)
	if err != nil {
		return fmt.Errorf("list the extended attributes of %s: %w", file, err)
	}
	for _, name := range names {
		value, err := xattr(file, name)
		if err == nil {
			err = unix.Fsetxattr(int(f.Fd()), name, value, 0)
		}
		if err != nil {
			return fmt.Errorf("keep the extended attribute %s of %s: %w", name, file, err)
		}
	}
	return nil
}

// xattrNames lists a file's extended attributes.
func xattrNames(file string) ([]string, error) {
	buf, err := growing(func(b []byte) (int, error) { return unix.Listxattr(file, b) })
	if err != nil || len(buf) == 0 {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(buf), "\x00"), "\x00"), nil
}

// xattr reads one extended attribute.
func xattr(file, name string) ([]byte, error) {
	return growing(func(b []byte) (int, error) { return unix.Getxattr(file, name, b) })
}

// growing calls an xattr syscall with a buffer large enough for its answer (asking for the size first;
// the value can grow in between, which ERANGE reports).
func growing(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// RemoveTemps implements Files.
func (d DirFS) RemoveTemps(path string) error {
	full, err := d.HostPath(path)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Dir(full))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	prefix := tempPrefix(filepath.Base(full))
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && !e.IsDir() {
			if err := os.Remove(filepath.Join(filepath.Dir(full), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Rename implements Files.
func (d DirFS) Rename(from, to string) error {
	src, err := d.HostPath(from)
	if err != nil {
		return err
	}
	dst, err := d.HostPath(to)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// fileSHA256 returns the hex sha256 of a host file, or "" when it does not exist.
func fileSHA256(files Files, path string) (string, error) {
	full, err := files.HostPath(path)
	if err != nil {
		return "", err
	}
	f, err := os.Open(full)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readOptional reads a host file; a missing file gives exists=false and no error.
func readOptional(files Files, path string) (data []byte, exists bool, err error) {
	data, err = files.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// copyFile copies a host file to another host path atomically, keeping its mode.
func copyFile(files Files, from, to string) error {
	data, err := files.ReadFile(from)
	if err != nil {
		return err
	}
	fi, err := files.Stat(from)
	if err != nil {
		return err
	}
	return files.WriteFile(to, data, fi.Mode().Perm())
}
