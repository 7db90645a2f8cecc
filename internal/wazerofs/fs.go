//go:build linux

package wazerofs

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"strconv"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// resolve is how every path is looked up: inside the mount, without procfs magic links.
const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// maxRetries bounds the retries of a lookup the kernel aborted with EAGAIN because a rename or mount
// raced with it (RESOLVE_IN_ROOT checks for those while it resolves "..").
const maxRetries = 128

// DefaultUmask is the umask of a container process when the OCI spec sets none (runc's default).
const DefaultUmask = 0o022

// Options configure an FS.
type Options struct {
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// Creds are the credentials file operations run with; nil runs them with the shim's own.
	Creds *Creds
	// Umask is cleared from the mode of new files (0666) and directories (0777).
	Umask uint32
}

// FS is one mount as a wazero sys.FS. Close it once the guest has stopped.
type FS struct {
	experimentalsys.UnimplementedFS
	dir      string // the host directory, for errors only
	root     int    // O_PATH descriptor of dir: the "/" of every lookup
	readOnly bool
	creds    *Creds
	fileMode uint32
	dirMode  uint32
}

var _ experimentalsys.FS = (*FS)(nil)

// Open opens the host directory dir as the root of an FS. It fails when the kernel cannot confine
// lookups (no openat2 before Linux 5.6): the guest must not run then.
func Open(dir string, o Options) (*FS, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open mount source %s: %w", dir, err)
	}
	f := &FS{dir: dir, root: root, readOnly: o.ReadOnly, creds: o.Creds,
		fileMode: 0o666 &^ o.Umask, dirMode: 0o777 &^ o.Umask}
	probe, err := f.openat2(".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		_ = unix.Close(root)
		if errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("open mount source %s: the kernel has no openat2 (Linux 5.6 or later is needed to confine the guest's files): %w", dir, err)
		}
		return nil, fmt.Errorf("open mount source %s: %w", dir, err)
	}
	_ = unix.Close(probe)
	return f, nil
}

// Close releases the mount's directory descriptor; files the guest still holds stay open.
func (f *FS) Close() error {
	if f.root < 0 {
		return nil
	}
	err := unix.Close(f.root)
	f.root = -1
	if err != nil {
		return fmt.Errorf("close mount source %s: %w", f.dir, err)
	}
	return nil
}

// String names the host directory (for logs).
func (f *FS) String() string { return "wazerofs(" + f.dir + ")" }

// openat2 opens path below the root, retrying lookups that raced with a rename.
func (f *FS) openat2(path string, flags int, mode uint32) (int, error) {
	if path == "" {
		path = "."
	}
	flags |= unix.O_CLOEXEC
	if flags&unix.O_PATH == 0 {
		flags |= unix.O_NOCTTY // openat2 takes no other flags with O_PATH
	}
	how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolve}
	for range maxRetries {
		fd, err := unix.Openat2(f.root, path, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// split cuts path into the directory to resolve and the final name, which never holds a slash.
// A final "." or ".." (or the root itself) becomes the whole path and ".": the name then is the
// resolved directory, and no lookup of ".." happens outside openat2.
func split(path string) (dir, name string, trailingSlash bool) {
	p := strings.TrimRight(path, "/")
	trailingSlash = len(p) < len(path)
	i := strings.LastIndexByte(p, '/')
	dir, name = p[:i+1], p[i+1:]
	if name == "" || name == "." || name == ".." {
		return path, ".", trailingSlash
	}
	if dir == "" {
		dir = "."
	}
	return dir, name, trailingSlash
}

// at runs op on the parent directory of path and the final name, with the FS's credentials.
func (f *FS) at(path string, op func(dirfd int, name string, trailingSlash bool) error) experimentalsys.Errno {
	return errno(f.creds.do(func() error {
		dir, name, slash := split(path)
		fd, err := f.openat2(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return op(fd, name, slash)
	}))
}

// writable returns EROFS for a read-only FS.
func (f *FS) writable() experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return 0
}

// OpenFile implements sys.FS. perm is ignored: WASI preview1 passes no mode, so new files get
// 0666 less the umask, like a container process's creat(2) would with the usual modes.
func (f *FS) OpenFile(path string, flag experimentalsys.Oflag, _ iofs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	oflags, writes := openFlags(flag)
	if writes {
		if e := f.writable(); e != 0 {
			return nil, e
		}
	}
	var fd int
	err := f.creds.do(func() (err error) {
		fd, err = f.open(path, oflags)
		return err
	})
	if err != nil {
		return nil, errno(err)
	}
	return newFile(f, fd, flag), 0
}

// open opens path with oflags, refusing device nodes: it looks the path up as O_PATH first, checks
// what it found and reopens that very inode through /proc/self/fd, so nothing can be swapped in
// between. A path that does not exist yet is created by the open itself, which the device check
// then follows: only a node that appeared in that instant could be opened (with O_NOCTTY) before
// being refused, and a guest cannot create one.
func (f *FS) open(path string, oflags int) (int, error) {
	create := oflags&unix.O_CREAT != 0
	pathfd, err := f.openat2(path, unix.O_PATH|(oflags&(unix.O_NOFOLLOW|unix.O_DIRECTORY)), 0)
	if errors.Is(err, unix.ENOENT) && create {
		fd, err := f.openat2(path, oflags, f.fileMode)
		if err != nil {
			return -1, err
		}
		if err := refuseDevice(fd); err != nil {
			_ = unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	if err != nil {
		return -1, err
	}
	defer unix.Close(pathfd)
	if create && oflags&unix.O_EXCL != 0 {
		return -1, unix.EEXIST
	}
	if err := refuseDevice(pathfd); err != nil {
		return -1, err
	}
	reopen := oflags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW)
	for {
		fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathfd), reopen|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// refuseDevice returns EACCES for a device node (as a nodev mount would) and ELOOP for a symbolic
// link (an O_NOFOLLOW lookup stopped at it).
func refuseDevice(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		return unix.EACCES
	case unix.S_IFLNK:
		return unix.ELOOP
	}
	return nil
}

// openFlags converts wazero's open flags; writes is true when the open could change the file system.
func openFlags(flag experimentalsys.Oflag) (oflags int, writes bool) {
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		oflags, writes = unix.O_RDWR, true
	case experimentalsys.O_WRONLY:
		oflags, writes = unix.O_WRONLY, true
	default:
		oflags = unix.O_RDONLY
	}
	for _, m := range []struct {
		wazero experimentalsys.Oflag
		unix   int
		writes bool
	}{
		{experimentalsys.O_APPEND, unix.O_APPEND, true},
		{experimentalsys.O_CREAT, unix.O_CREAT, true},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY, false},
		{experimentalsys.O_DSYNC, unix.O_DSYNC, false},
		{experimentalsys.O_EXCL, unix.O_EXCL, false},
		{experimentalsys.O_NOFOLLOW, unix.O_NOFOLLOW, false},
		{experimentalsys.O_NONBLOCK, unix.O_NONBLOCK, false},
		{experimentalsys.O_RSYNC, unix.O_RSYNC, false},
		{experimentalsys.O_SYNC, unix.O_SYNC, false},
		{experimentalsys.O_TRUNC, unix.O_TRUNC, true},
	} {
		if flag&m.wazero != 0 {
			oflags |= m.unix
			writes = writes || m.writes
		}
	}
	return oflags, writes
}

// Stat implements sys.FS: it follows a final symbolic link (inside the mount).
func (f *FS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	var st unix.Stat_t
	err := f.creds.do(func() error {
		fd, err := f.openat2(path, unix.O_PATH, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fstat(fd, &st)
	})
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return statT(&st), 0
}

// Lstat implements sys.FS: a final symbolic link is described itself, unless the path ends in a slash.
func (f *FS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	if _, _, slash := split(path); slash {
		return f.Stat(path)
	}
	var st unix.Stat_t
	if e := f.at(path, func(dirfd int, name string, _ bool) error {
		return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}); e != 0 {
		return sys.Stat_t{}, e
	}
	return statT(&st), 0
}

// Readlink implements sys.FS. The target is returned as stored; it resolves inside the mount.
func (f *FS) Readlink(path string) (target string, e experimentalsys.Errno) {
	e = f.at(path, func(dirfd int, name string, _ bool) error {
		buf := make([]byte, 256)
		for {
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				return err
			}
			if n < len(buf) {
				target = string(buf[:n])
				return nil
			}
			buf = make([]byte, 2*len(buf))
		}
	})
	return target, e
}

// Mkdir implements sys.FS. perm is ignored (0777 less the umask), as for OpenFile.
func (f *FS) Mkdir(path string, _ iofs.FileMode) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at(path, func(dirfd int, name string, _ bool) error {
		return unix.Mkdirat(dirfd, name, f.dirMode)
	})
}

// Chmod implements sys.FS; WASI preview1 cannot change modes, so nothing calls it.
func (f *FS) Chmod(string, iofs.FileMode) experimentalsys.Errno { return experimentalsys.ENOSYS }

// Rmdir implements sys.FS.
func (f *FS) Rmdir(path string) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at(path, func(dirfd int, name string, _ bool) error {
		return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	})
}

// Unlink implements sys.FS.
func (f *FS) Unlink(path string) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at(path, func(dirfd int, name string, slash bool) error {
		if slash {
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return unix.ENOTDIR
			}
		}
		return unix.Unlinkat(dirfd, name, 0)
	})
}

// Symlink implements sys.FS. The target is stored as given: it is only ever resolved inside a mount.
func (f *FS) Symlink(target, linkName string) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at(linkName, func(dirfd int, name string, _ bool) error {
		return unix.Symlinkat(target, dirfd, name)
	})
}

// Rename implements sys.FS.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at2(from, to, func(fromfd int, fromName string, tofd int, toName string) error {
		return unix.Renameat(fromfd, fromName, tofd, toName)
	})
}

// Link implements sys.FS. A final symbolic link in oldPath is linked itself, not followed.
func (f *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	return f.at2(oldPath, newPath, func(oldfd int, oldName string, newfd int, newName string) error {
		return unix.Linkat(oldfd, oldName, newfd, newName, 0)
	})
}

// at2 is at for operations on two names.
func (f *FS) at2(a, b string, op func(afd int, aName string, bfd int, bName string) error) experimentalsys.Errno {
	return f.at(a, func(afd int, aName string, _ bool) error {
		dir, bName, _ := split(b)
		bfd, err := f.openat2(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(bfd)
		return op(afd, aName, bfd, bName)
	})
}

// Utimens implements sys.FS: it follows a final symbolic link (inside the mount).
func (f *FS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	if e := f.writable(); e != 0 {
		return e
	}
	ts, ok := timespecs(atim, mtim)
	if !ok {
		return 0
	}
	return errno(f.creds.do(func() error {
		fd, err := f.openat2(path, unix.O_PATH, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	}))
}

// timespecs converts wazero's times (UTIME_OMIT keeps one); ok is false when both are omitted.
func timespecs(atim, mtim int64) (ts []unix.Timespec, ok bool) {
	if atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT {
		return nil, false
	}
	conv := func(t int64) unix.Timespec {
		if t == experimentalsys.UTIME_OMIT {
			return unix.Timespec{Nsec: unix.UTIME_OMIT}
		}
		return unix.NsecToTimespec(t)
	}
	return []unix.Timespec{conv(atim), conv(mtim)}, true
}

// errno converts a system call error to wazero's Errno (unknown ones become EIO).
func errno(err error) experimentalsys.Errno {
	return experimentalsys.UnwrapOSError(err)
}

// statT converts a stat result to wazero's.
func statT(st *unix.Stat_t) sys.Stat_t {
	return sys.Stat_t{
		Dev:   st.Dev,
		Ino:   st.Ino,
		Mode:  fileMode(st.Mode),
		Nlink: uint64(st.Nlink),
		Size:  st.Size,
		Atim:  unix.TimespecToNsec(st.Atim),
		Mtim:  unix.TimespecToNsec(st.Mtim),
		Ctim:  unix.TimespecToNsec(st.Ctim),
	}
}

// fileMode converts a stat mode to an fs.FileMode.
func fileMode(m uint32) iofs.FileMode {
	mode := iofs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= iofs.ModeDir
	case unix.S_IFLNK:
		mode |= iofs.ModeSymlink
	case unix.S_IFIFO:
		mode |= iofs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= iofs.ModeSocket
	case unix.S_IFCHR:
		mode |= iofs.ModeDevice | iofs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= iofs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= iofs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= iofs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= iofs.ModeSticky
	}
	return mode
}
