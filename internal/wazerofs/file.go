//go:build linux

package wazerofs

import (
	"encoding/binary"
	"io"
	iofs "io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// file is an open file or directory of an FS: a descriptor the guest reads and writes directly.
type file struct {
	experimentalsys.UnimplementedFile
	fs       *FS
	fd       int
	flag     experimentalsys.Oflag
	closed   bool
	statDone bool // dev, ino and isDir are cached
	dev, ino uint64
	isDir    bool
	dirBuf   []byte // getdents buffer and the unread part of it
	dirRest  []byte
}

var _ experimentalsys.File = (*file)(nil)

func newFile(fs *FS, fd int, flag experimentalsys.Oflag) *file {
	return &file{fs: fs, fd: fd, flag: flag}
}

func (f *file) cachedStat() experimentalsys.Errno {
	if !f.statDone {
		if _, e := f.Stat(); e != 0 {
			return e
		}
	}
	return 0
}

// Dev implements sys.File.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	e := f.cachedStat()
	return f.dev, e
}

// Ino implements sys.File.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	e := f.cachedStat()
	return f.ino, e
}

// IsDir implements sys.File.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	e := f.cachedStat()
	return f.isDir, e
}

// IsAppend implements sys.File.
func (f *file) IsAppend() bool { return f.flag&experimentalsys.O_APPEND != 0 }

// SetAppend implements sys.File with fcntl(F_SETFL) on the descriptor itself.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	return f.setFlag(experimentalsys.O_APPEND, unix.O_APPEND, enable)
}

// IsNonblock implements sys.PollableFile.
func (f *file) IsNonblock() bool { return f.flag&experimentalsys.O_NONBLOCK != 0 }

// SetNonblock implements sys.PollableFile.
func (f *file) SetNonblock(enable bool) experimentalsys.Errno {
	return f.setFlag(experimentalsys.O_NONBLOCK, unix.O_NONBLOCK, enable)
}

func (f *file) setFlag(wazeroFlag experimentalsys.Oflag, unixFlag int, enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if enable && unixFlag == unix.O_APPEND {
		if e := f.fs.writable(); e != 0 {
			return e
		}
	}
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err != nil {
		return errno(err)
	}
	if enable {
		fl |= unixFlag
	} else {
		fl &^= unixFlag
	}
	if _, err := unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl); err != nil {
		return errno(err)
	}
	if enable {
		f.flag |= wazeroFlag
	} else {
		f.flag &^= wazeroFlag
	}
	return 0
}

// Poll implements sys.PollableFile.
func (f *file) Poll(flag experimentalsys.Pflag, timeoutMillis int32) (ready bool, e experimentalsys.Errno) {
	if flag != experimentalsys.POLLIN {
		return false, experimentalsys.ENOTSUP
	}
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(timeoutMillis))
	return n > 0, errno(err)
}

// Stat implements sys.File.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return sys.Stat_t{}, errno(err)
	}
	f.statDone, f.dev, f.ino, f.isDir = true, st.Dev, st.Ino, st.Mode&unix.S_IFMT == unix.S_IFDIR
	return statT(&st), 0
}

// Read implements sys.File.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	return f.io(func() (int, error) { return unix.Read(f.fd, buf) })
}

// Pread implements sys.File.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	return f.io(func() (int, error) { return unix.Pread(f.fd, buf, off) })
}

// Write implements sys.File.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	return f.io(func() (int, error) { return unix.Write(f.fd, buf) })
}

// Pwrite implements sys.File.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	return f.io(func() (int, error) { return unix.Pwrite(f.fd, buf, off) })
}

// io runs a read or write, retrying interrupted ones.
func (f *file) io(op func() (int, error)) (int, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	for {
		n, err := op()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, errno(err)
		}
		return n, 0
	}
}

// fileOffset is int64. sys.File.Seek returns an Errno where io.Seeker returns an error, and vet's
// stdmethods check flags a method that looks like io.Seek with other results unless its offset is
// spelt differently.
type fileOffset = int64

// Seek implements sys.File. On a directory only a rewind (offset 0 from the start) is supported.
func (f *file) Seek(offset fileOffset, whence int) (int64, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if isDir, e := f.IsDir(); e != 0 {
		return 0, e
	} else if isDir {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EISDIR
		}
		f.dirRest = nil
	}
	off, err := unix.Seek(f.fd, offset, whence)
	return off, errno(err)
}

// Readdir implements sys.File with getdents64, leaving out "." and ".." (wazero adds its own).
func (f *file) Readdir(n int) (dirents []experimentalsys.Dirent, e experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if isDir, e := f.IsDir(); e != 0 {
		return nil, e
	} else if !isDir {
		return nil, experimentalsys.EBADF
	}
	if f.dirBuf == nil {
		f.dirBuf = make([]byte, 8192)
	}
	for n <= 0 || len(dirents) < n {
		if len(f.dirRest) == 0 {
			m, err := unix.Getdents(f.fd, f.dirBuf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return dirents, errno(err)
			}
			if m == 0 {
				break // end of directory
			}
			f.dirRest = f.dirBuf[:m]
		}
		d, ok := nextDirent(&f.dirRest)
		if ok && d.Name != "." && d.Name != ".." {
			dirents = append(dirents, d)
		}
	}
	return dirents, 0
}

// nextDirent decodes the first linux_dirent64 of *buf and advances it.
func nextDirent(buf *[]byte) (experimentalsys.Dirent, bool) {
	b := *buf
	const nameOff = 19 // d_ino 8, d_off 8, d_reclen 2, d_type 1
	if len(b) < nameOff {
		*buf = nil
		return experimentalsys.Dirent{}, false
	}
	reclen := int(binary.NativeEndian.Uint16(b[16:18]))
	if reclen < nameOff || reclen > len(b) {
		*buf = nil
		return experimentalsys.Dirent{}, false
	}
	name := b[nameOff:reclen]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	*buf = b[reclen:]
	return experimentalsys.Dirent{Ino: binary.NativeEndian.Uint64(b[0:8]), Name: string(name), Type: direntType(b[18])}, len(name) > 0
}

func direntType(t uint8) iofs.FileMode {
	switch t {
	case unix.DT_REG:
		return 0
	case unix.DT_DIR:
		return iofs.ModeDir
	case unix.DT_LNK:
		return iofs.ModeSymlink
	case unix.DT_FIFO:
		return iofs.ModeNamedPipe
	case unix.DT_SOCK:
		return iofs.ModeSocket
	case unix.DT_CHR:
		return iofs.ModeDevice | iofs.ModeCharDevice
	case unix.DT_BLK:
		return iofs.ModeDevice
	}
	return iofs.ModeIrregular
}

// Truncate implements sys.File.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if e := f.fs.writable(); e != 0 {
		return e
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return errno(unix.Ftruncate(f.fd, size))
}

// Sync implements sys.File.
func (f *file) Sync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return errno(unix.Fsync(f.fd))
}

// Datasync implements sys.File.
func (f *file) Datasync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return errno(unix.Fdatasync(f.fd))
}

// Utimens implements sys.File. It runs with the FS's credentials: only the owner (or a user who
// may write the file, for the current time) may change times.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if e := f.fs.writable(); e != 0 {
		return e
	}
	ts, ok := timespecs(atim, mtim)
	if !ok {
		return 0
	}
	return errno(f.fs.creds.do(func() error { return unix.UtimesNanoAt(f.fd, "", ts, unix.AT_EMPTY_PATH) }))
}

// Close implements sys.File.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return errno(unix.Close(f.fd))
}
