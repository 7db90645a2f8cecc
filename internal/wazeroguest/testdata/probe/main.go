// Command probe is the wazero shim's sandbox probe: a Go wasip1 guest that calls WASI preview1's
// path and file functions directly (Go's os package cleans paths before the runtime sees them), so
// tests can try every way out of a mount and check every refusal. See package wazeroguest.
//
// Its arguments are steps, each an operation and its operands; DIR is a preopened directory's
// guest path ("/", "/data"), whose descriptor the probe looks up. Each step prints one line:
//
//	<n> <op> <operands...>: ok [output]
//	<n> <op> <operands...>: errno <name>
//
// Operations: read DIR PATH, read-nofollow DIR PATH, write DIR PATH TEXT (create or truncate),
// append DIR PATH TEXT, create-excl DIR PATH, truncate DIR PATH, symlink TARGET DIR PATH,
// link DIR OLD DIR NEW (following a final symlink of OLD), rename DIR OLD DIR NEW, mkdir DIR PATH,
// rmdir DIR PATH, unlink DIR PATH, stat DIR PATH, lstat DIR PATH, readlink DIR PATH,
// settimes DIR PATH, settimes-nofollow DIR PATH, fd-settimes DIR PATH, readdir DIR PATH; and for
// resource tests: alloc MIB (allocate and touch that much memory, and keep it), burn SECONDS (busy
// loop), sleep SECONDS.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

func main() {
	args := os.Args[1:]
	for n := 1; len(args) > 0; n++ {
		op := args[0]
		arity, ok := arities[op]
		if !ok || len(args) < 1+arity {
			fmt.Printf("%d %s: bad step (operations: %v)\n", n, strings.Join(args, " "), arities)
			os.Exit(64)
		}
		operands := args[1 : 1+arity]
		args = args[1+arity:]
		out, errno := run(op, operands)
		step := fmt.Sprintf("%d %s %s", n, op, strings.Join(operands, " "))
		if errno != 0 {
			fmt.Printf("%s: errno %s\n", step, errnoName(errno))
		} else if out != "" {
			fmt.Printf("%s: ok %s\n", step, out)
		} else {
			fmt.Printf("%s: ok\n", step)
		}
	}
}

var arities = map[string]int{
	"read": 2, "read-nofollow": 2, "write": 3, "append": 3, "create-excl": 2, "truncate": 2,
	"symlink": 3, "link": 4, "rename": 4, "mkdir": 2, "rmdir": 2, "unlink": 2, "stat": 2,
	"lstat": 2, "readlink": 2, "settimes": 2, "settimes-nofollow": 2, "fd-settimes": 2, "readdir": 2,
	"alloc": 1, "burn": 1, "sleep": 1,
}

// held keeps what alloc allocated.
var held [][]byte

// WASI preview1 constants.
const (
	lookupSymlinkFollow = 1

	oflagCreat     = 1
	oflagDirectory = 2
	oflagExcl      = 4
	oflagTrunc     = 8

	fdflagAppend = 1

	rightFdRead      = 1 << 1
	rightFdWrite     = 1 << 6
	rightFdReaddir   = 1 << 14
	rightFdSetSize   = 1 << 22
	rightFdSetTimes  = 1 << 24
	rightsEverything = 1<<30 - 1

	fstflagsAtimNow = 2
	fstflagsMtimNow = 8
)

func run(op string, a []string) (string, uint32) {
	switch op {
	case "alloc":
		for range atoi(a[0]) {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = byte(i)
			}
			held = append(held, b)
		}
		return fmt.Sprintf("holding %d MiB", len(held)), 0
	case "burn":
		n := 0
		for end := time.Now().Add(time.Duration(atoi(a[0])) * time.Second); time.Now().Before(end); n++ {
		}
		return fmt.Sprintf("%d iterations", n), 0
	case "sleep":
		time.Sleep(time.Duration(atoi(a[0])) * time.Second)
		return "", 0
	case "read", "read-nofollow":
		flags := uint32(lookupSymlinkFollow)
		if op == "read-nofollow" {
			flags = 0
		}
		fd, e := open(a[0], a[1], flags, 0, rightFdRead, 0)
		if e != 0 {
			return "", e
		}
		defer fdClose(fd)
		return readAll(fd)
	case "write", "append", "create-excl":
		oflags, fdflags := uint32(oflagCreat|oflagTrunc), uint32(0)
		text := ""
		switch op {
		case "write":
			text = a[2]
		case "append":
			oflags, fdflags, text = oflagCreat, fdflagAppend, a[2]
		case "create-excl":
			oflags = oflagCreat | oflagExcl
		}
		fd, e := open(a[0], a[1], lookupSymlinkFollow, oflags, rightFdRead|rightFdWrite, fdflags)
		if e != 0 {
			return "", e
		}
		defer fdClose(fd)
		return "", writeAll(fd, text)
	case "truncate", "fd-settimes":
		fd, e := open(a[0], a[1], lookupSymlinkFollow, 0, rightFdRead|rightFdWrite|rightFdSetSize|rightFdSetTimes, 0)
		if e != 0 {
			// Some files (directories, read-only ones) open read-only only; the call itself must refuse then.
			if fd, e = open(a[0], a[1], lookupSymlinkFollow, 0, rightFdRead|rightFdSetSize|rightFdSetTimes, 0); e != 0 {
				return "", e
			}
		}
		defer fdClose(fd)
		if op == "truncate" {
			return "", fd_filestat_set_size(fd, 0)
		}
		return "", fd_filestat_set_times(fd, 0, 0, fstflagsAtimNow|fstflagsMtimNow)
	case "symlink":
		dir, e := preopen(a[1])
		if e != 0 {
			return "", e
		}
		return "", path_symlink(ptr(a[0]), size(a[0]), dir, ptr(a[2]), size(a[2]))
	case "link", "rename":
		from, e := preopen(a[0])
		if e != 0 {
			return "", e
		}
		to, e := preopen(a[2])
		if e != 0 {
			return "", e
		}
		if op == "link" {
			return "", path_link(from, lookupSymlinkFollow, ptr(a[1]), size(a[1]), to, ptr(a[3]), size(a[3]))
		}
		return "", path_rename(from, ptr(a[1]), size(a[1]), to, ptr(a[3]), size(a[3]))
	}
	dir, e := preopen(a[0])
	if e != 0 {
		return "", e
	}
	p := a[1]
	switch op {
	case "mkdir":
		return "", path_create_directory(dir, ptr(p), size(p))
	case "rmdir":
		return "", path_remove_directory(dir, ptr(p), size(p))
	case "unlink":
		return "", path_unlink_file(dir, ptr(p), size(p))
	case "stat", "lstat":
		flags := uint32(lookupSymlinkFollow)
		if op == "lstat" {
			flags = 0
		}
		var st [64]byte // filestat: dev u64, ino u64, filetype u8 (+7), nlink u64, size u64, atim, mtim, ctim
		if e := path_filestat_get(dir, flags, ptr(p), size(p), unsafe.Pointer(&st[0])); e != 0 {
			return "", e
		}
		return fmt.Sprintf("type=%s size=%d", fileTypes[st[16]], le64(st[32:40])), 0
	case "readlink":
		buf := make([]byte, 4096)
		var n uint32
		if e := path_readlink(dir, ptr(p), size(p), unsafe.Pointer(&buf[0]), uint32(len(buf)), unsafe.Pointer(&n)); e != 0 {
			return "", e
		}
		return string(buf[:n]), 0
	case "settimes", "settimes-nofollow":
		flags := uint32(lookupSymlinkFollow)
		if op == "settimes-nofollow" {
			flags = 0
		}
		return "", path_filestat_set_times(dir, flags, ptr(p), size(p), 0, 0, fstflagsAtimNow|fstflagsMtimNow)
	case "readdir":
		fd, e := open(a[0], p, lookupSymlinkFollow, oflagDirectory, rightFdRead|rightFdReaddir, 0)
		if e != 0 {
			return "", e
		}
		defer fdClose(fd)
		return readdir(fd)
	}
	panic("unknown operation " + op)
}

var fileTypes = map[byte]string{0: "unknown", 1: "block", 2: "char", 3: "dir", 4: "file", 5: "socket-dgram", 6: "socket-stream", 7: "symlink"}

// preopen returns the descriptor of the preopened directory whose guest path is name.
func preopen(name string) (int32, uint32) {
	for fd := int32(3); fd < 64; fd++ {
		var pre [8]byte // tag u8 (+3), name_len u32
		if e := fd_prestat_get(fd, unsafe.Pointer(&pre[0])); e != 0 {
			break
		}
		n := uint32(pre[4]) | uint32(pre[5])<<8 | uint32(pre[6])<<16 | uint32(pre[7])<<24
		buf := make([]byte, n)
		if n > 0 && fd_prestat_dir_name(fd, unsafe.Pointer(&buf[0]), n) != 0 {
			continue
		}
		if string(buf) == name {
			return fd, 0
		}
	}
	return -1, 8 // badf
}

func open(dirName, p string, lookup, oflags uint32, rights uint64, fdflags uint32) (int32, uint32) {
	dir, e := preopen(dirName)
	if e != 0 {
		return -1, e
	}
	var fd int32
	e = path_open(dir, lookup, ptr(p), size(p), oflags, rights, rightsEverything, fdflags, unsafe.Pointer(&fd))
	return fd, e
}

type iovec struct {
	buf    uint32
	bufLen uint32
}

func readAll(fd int32) (string, uint32) {
	var out []byte
	buf := make([]byte, 4096)
	for len(out) < 256 { // enough to show what was read
		iov := iovec{buf: uint32(uintptr(unsafe.Pointer(&buf[0]))), bufLen: uint32(len(buf))}
		var n uint32
		if e := fd_read(fd, unsafe.Pointer(&iov), 1, unsafe.Pointer(&n)); e != 0 {
			return string(out), e
		}
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
	}
	return fmt.Sprintf("%q", out), 0
}

func writeAll(fd int32, text string) uint32 {
	b := []byte(text)
	for len(b) > 0 {
		iov := iovec{buf: uint32(uintptr(unsafe.Pointer(&b[0]))), bufLen: uint32(len(b))}
		var n uint32
		if e := fd_write(fd, unsafe.Pointer(&iov), 1, unsafe.Pointer(&n)); e != 0 {
			return e
		}
		b = b[n:]
	}
	return 0
}

func readdir(fd int32) (string, uint32) {
	buf := make([]byte, 64<<10)
	var n uint32
	if e := fd_readdir(fd, unsafe.Pointer(&buf[0]), uint32(len(buf)), 0, unsafe.Pointer(&n)); e != 0 {
		return "", e
	}
	var names []string
	for b := buf[:n]; len(b) >= 24; {
		nameLen := le32(b[16:20])
		if uint32(len(b)) < 24+nameLen {
			break
		}
		names = append(names, string(b[24:24+nameLen]))
		b = b[24+nameLen:]
	}
	return strings.Join(names, ","), 0
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Println(err)
		os.Exit(64)
	}
	return n
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func le64(b []byte) uint64 { return uint64(le32(b[0:4])) | uint64(le32(b[4:8]))<<32 }

func ptr(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func size(s string) uint32 { return uint32(len(s)) }

func fdClose(fd int32) { fd_close(fd) }

func errnoName(e uint32) string {
	names := map[uint32]string{
		2: "EACCES", 6: "EAGAIN", 8: "EBADF", 10: "EBUSY", 20: "EEXIST", 28: "EINVAL", 29: "EIO",
		31: "EISDIR", 32: "ELOOP", 44: "ENOENT", 52: "ENOSYS", 54: "ENOTDIR", 55: "ENOTEMPTY",
		58: "ENOTSUP", 63: "EPERM", 69: "EROFS", 75: "EXDEV", 76: "ENOTCAPABLE",
	}
	if n, ok := names[e]; ok {
		return n
	}
	return fmt.Sprint(e)
}

//go:wasmimport wasi_snapshot_preview1 path_open
func path_open(fd int32, dirflags uint32, path unsafe.Pointer, pathLen uint32, oflags uint32, rightsBase, rightsInheriting uint64, fdflags uint32, result unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_read
func fd_read(fd int32, iovs unsafe.Pointer, iovsLen uint32, nread unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_write
func fd_write(fd int32, iovs unsafe.Pointer, iovsLen uint32, nwritten unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_close
func fd_close(fd int32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_readdir
func fd_readdir(fd int32, buf unsafe.Pointer, bufLen uint32, cookie uint64, nwritten unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_filestat_set_size
func fd_filestat_set_size(fd int32, size uint64) uint32

//go:wasmimport wasi_snapshot_preview1 fd_filestat_set_times
func fd_filestat_set_times(fd int32, atim, mtim uint64, flags uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_get
func fd_prestat_get(fd int32, prestat unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_dir_name
func fd_prestat_dir_name(fd int32, path unsafe.Pointer, pathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_symlink
func path_symlink(oldPath unsafe.Pointer, oldPathLen uint32, fd int32, newPath unsafe.Pointer, newPathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_link
func path_link(oldFd int32, oldFlags uint32, oldPath unsafe.Pointer, oldPathLen uint32, newFd int32, newPath unsafe.Pointer, newPathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_rename
func path_rename(oldFd int32, oldPath unsafe.Pointer, oldPathLen uint32, newFd int32, newPath unsafe.Pointer, newPathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_create_directory
func path_create_directory(fd int32, path unsafe.Pointer, pathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_remove_directory
func path_remove_directory(fd int32, path unsafe.Pointer, pathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_unlink_file
func path_unlink_file(fd int32, path unsafe.Pointer, pathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_filestat_get
func path_filestat_get(fd int32, flags uint32, path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 path_filestat_set_times
func path_filestat_set_times(fd int32, flags uint32, path unsafe.Pointer, pathLen uint32, atim, mtim uint64, fstflags uint32) uint32

//go:wasmimport wasi_snapshot_preview1 path_readlink
func path_readlink(fd int32, path unsafe.Pointer, pathLen uint32, buf unsafe.Pointer, bufLen uint32, nwritten unsafe.Pointer) uint32
