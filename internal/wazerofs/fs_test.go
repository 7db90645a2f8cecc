//go:build linux

package wazerofs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// world is a test tree: root/ is the mount, outside/ holds what must stay out of reach.
type world struct {
	dir, root, outside string
}

const outsideText = "OUTSIDE THE MOUNT"

func newWorld(t testing.TB) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{dir: dir, root: filepath.Join(dir, "root"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{"root/a/b", "root/dir", "outside/dir"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	for p, content := range map[string]string{
		"outside/secret": outsideText, "outside/dir/secret": outsideText,
		"root/f": "inside", "root/a/b/g": "inside g", "root/etc-zone": "zone inside",
	} {
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644))
	}
	for link, target := range map[string]string{
		"out": "../outside", "abs": w.outside, "abs-secret": filepath.Join(w.outside, "secret"),
		"up": "../../../../../..", "procself": "/proc/self/root", "a/b/back": "../../..", "zone": "/etc-zone",
	} {
		must(t, os.Symlink(target, filepath.Join(w.root, link)))
	}
	return w
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openFS(t testing.TB, dir string, o Options) *FS {
	t.Helper()
	f, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// read opens path and returns its content, or the errno.
func read(f *FS, path string) (string, experimentalsys.Errno) {
	file, e := f.OpenFile(path, experimentalsys.O_RDONLY, 0)
	if e != 0 {
		return "", e
	}
	defer file.Close()
	buf := make([]byte, 256)
	n, e := file.Read(buf)
	return string(buf[:n]), e
}

// TestConfinement: no path reaches outside/, whatever links, ".." or /proc it goes through, and
// links resolve inside the mount the way they would in a container whose root it is.
func TestConfinement(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := openFS(t, w.root, Options{Umask: DefaultUmask})
	outside := strings.TrimPrefix(w.outside, "/")
	for _, tc := range []struct {
		path string
		want string
		e    experimentalsys.Errno
	}{
		{"f", "inside", 0},
		{"zone", "zone inside", 0}, // an absolute link resolves inside
		{"a/b/back/f", "inside", 0},
		{"a/b/back/a/b/g", "inside g", 0},
		{"../outside/secret", "", experimentalsys.ENOENT},
		{"/../../outside/secret", "", experimentalsys.ENOENT},
		{"a/../../outside/secret", "", experimentalsys.ENOENT},
		{"../f", "inside", 0}, // ".." stops at the root
		{"out/secret", "", experimentalsys.ENOENT},
		{"abs/secret", "", experimentalsys.ENOENT},
		{"abs-secret", "", experimentalsys.ENOENT},
		{"up/" + outside + "/secret", "", experimentalsys.ENOENT},
		{"up/f", "inside", 0},
		{"a/b/back/../../outside/secret", "", experimentalsys.ENOENT},
		{"procself/" + outside + "/secret", "", experimentalsys.ENOENT},
		{"/proc/self/root/" + outside + "/secret", "", experimentalsys.ENOENT},
	} {
		got, e := read(f, tc.path)
		if got != tc.want || e != tc.e {
			t.Errorf("read %s: %q, %v; want %q, %v", tc.path, got, e, tc.want, tc.e)
		}
	}
	// Name operations act on the final name inside the resolved parent, also for "." and "..".
	for _, tc := range []struct {
		name string
		e    experimentalsys.Errno
		op   func() experimentalsys.Errno
	}{
		{"mkdir through a link", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Mkdir("abs/new", 0) }},
		{"mkdir ..", experimentalsys.EEXIST, func() experimentalsys.Errno { return f.Mkdir("..", 0) }},
		{"unlink through a link", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Unlink("out/secret") }},
		{"rmdir ..", experimentalsys.EINVAL, func() experimentalsys.Errno { return f.Rmdir("a/b/..") }},
		{"rmdir through a link", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Rmdir("up/" + outside + "/dir") }},
		{"rename out", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Rename("f", "abs/f") }},
		{"rename in", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Rename("out/secret", "stolen") }},
		{"rename ..", experimentalsys.EIO, func() experimentalsys.Errno { return f.Rename("a/..", "x") }}, // EBUSY
		{"link in", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Link("abs/secret", "hard") }},
		{"symlink through a link", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Symlink("x", "out/x") }},
		{"utimens through a link", experimentalsys.ENOENT, func() experimentalsys.Errno { return f.Utimens("abs-secret", 1, 1) }},
	} {
		if e := tc.op(); e != tc.e {
			t.Errorf("%s: %v, want %v", tc.name, e, tc.e)
		}
	}
	if _, e := f.Stat("abs-secret"); e != experimentalsys.ENOENT {
		t.Errorf("stat abs-secret: %v, want ENOENT", e)
	}
	if st, e := f.Lstat(".."); e != 0 || !st.Mode.IsDir() {
		t.Errorf("lstat ..: %v, %v; want the root directory", st.Mode, e)
	}
	if target, e := f.Readlink("abs"); e != 0 || target != w.outside {
		t.Errorf("readlink abs: %q, %v", target, e)
	}
	checkOutside(t, w)
}

// checkOutside fails t unless outside/ holds exactly what newWorld put there.
func checkOutside(t testing.TB, w *world) {
	t.Helper()
	var got []string
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == w.root {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(w.dir, p)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel += "=" + string(b)
		}
		got = append(got, rel)
		return nil
	})
	must(t, err)
	want := ". outside outside/dir outside/dir/secret=" + outsideText + " outside/secret=" + outsideText
	if strings.Join(got, " ") != want {
		t.Errorf("outside the mount: %v, want %s", got, want)
	}
}

// TestReadOnly: every change is refused with EROFS, reads work.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := openFS(t, w.root, Options{ReadOnly: true})
	for name, op := range map[string]func() experimentalsys.Errno{
		"create": func() experimentalsys.Errno {
			_, e := f.OpenFile("new", experimentalsys.O_CREAT|experimentalsys.O_RDWR, 0)
			return e
		},
		"write":    func() experimentalsys.Errno { _, e := f.OpenFile("f", experimentalsys.O_WRONLY, 0); return e },
		"truncate": func() experimentalsys.Errno { _, e := f.OpenFile("f", experimentalsys.O_TRUNC, 0); return e },
		"append":   func() experimentalsys.Errno { _, e := f.OpenFile("f", experimentalsys.O_APPEND, 0); return e },
		"mkdir":    func() experimentalsys.Errno { return f.Mkdir("d", 0) },
		"rmdir":    func() experimentalsys.Errno { return f.Rmdir("dir") },
		"unlink":   func() experimentalsys.Errno { return f.Unlink("f") },
		"rename":   func() experimentalsys.Errno { return f.Rename("f", "g") },
		"link":     func() experimentalsys.Errno { return f.Link("f", "g") },
		"symlink":  func() experimentalsys.Errno { return f.Symlink("f", "g") },
		"utimens":  func() experimentalsys.Errno { return f.Utimens("f", 1, 1) },
		"fd truncate": func() experimentalsys.Errno {
			file, e := f.OpenFile("f", experimentalsys.O_RDONLY, 0)
			if e != 0 {
				return e
			}
			defer file.Close()
			return file.Truncate(0)
		},
		"fd utimens": func() experimentalsys.Errno {
			file, e := f.OpenFile("f", experimentalsys.O_RDONLY, 0)
			if e != 0 {
				return e
			}
			defer file.Close()
			return file.Utimens(1, 1)
		},
		"fd append": func() experimentalsys.Errno {
			file, e := f.OpenFile("f", experimentalsys.O_RDONLY, 0)
			if e != 0 {
				return e
			}
			defer file.Close()
			return file.SetAppend(true)
		},
	} {
		if e := op(); e != experimentalsys.EROFS {
			t.Errorf("%s: %v, want EROFS", name, e)
		}
	}
	if got, e := read(f, "f"); got != "inside" || e != 0 {
		t.Errorf("read f: %q, %v", got, e)
	}
	if b, err := os.ReadFile(filepath.Join(w.root, "f")); err != nil || string(b) != "inside" {
		t.Errorf("f changed: %q, %v", b, err)
	}
}

// TestDevices: device nodes are refused, as on a nodev mount, also through links.
func TestDevices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	must(t, unix.Mknod(filepath.Join(w.root, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	must(t, os.Symlink("/zero", filepath.Join(w.root, "zero-link")))
	f := openFS(t, w.root, Options{})
	for _, p := range []string{"zero", "zero-link"} {
		for _, flag := range []experimentalsys.Oflag{experimentalsys.O_RDONLY, experimentalsys.O_WRONLY, experimentalsys.O_CREAT | experimentalsys.O_RDWR} {
			if _, e := f.OpenFile(p, flag, 0); e != experimentalsys.EACCES {
				t.Errorf("open %s (flags %#x): %v, want EACCES", p, flag, e)
			}
		}
	}
	if st, e := f.Stat("zero-link"); e != 0 || st.Mode&fs.ModeCharDevice == 0 {
		t.Errorf("stat zero-link: %v, %v; a device can be seen, only not opened", st.Mode, e)
	}
}

// TestFiles covers the file operations wazero's WASI layer uses: create, write, append, seek,
// read, readdir with rewind, truncate, times, links, renames, removal, and O_NOFOLLOW.
func TestFiles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	f := openFS(t, w.root, Options{Umask: 0o027})
	file, e := f.OpenFile("dir/new", experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_RDWR, 0o600)
	if e != 0 {
		t.Fatalf("create: %v", e)
	}
	if n, e := file.Write([]byte("hello")); n != 5 || e != 0 {
		t.Fatalf("write: %d, %v", n, e)
	}
	must(t, errOf(file.SetAppend(true)))
	if _, e := file.Write([]byte(" world")); e != 0 {
		t.Fatal(e)
	}
	if off, e := file.Seek(0, 0); off != 0 || e != 0 {
		t.Fatalf("seek: %d, %v", off, e)
	}
	buf := make([]byte, 32)
	if n, e := file.Read(buf); string(buf[:n]) != "hello world" || e != 0 {
		t.Fatalf("read: %q, %v", buf[:n], e)
	}
	if n, e := file.Pread(buf[:5], 6); string(buf[:n]) != "world" || e != 0 {
		t.Fatalf("pread: %q, %v", buf[:n], e)
	}
	must(t, errOf(file.Truncate(5)))
	must(t, errOf(file.Utimens(1e9, 2e9)))
	st, e := file.Stat()
	if e != 0 || st.Size != 5 || st.Mtim != 2e9 || st.Mode.Perm() != 0o640 {
		t.Fatalf("stat: %+v, %v; want size 5, mtime 2s, mode 0640 (0666 less umask 027)", st, e)
	}
	must(t, errOf(file.Close()))
	if _, e := f.OpenFile("dir/new", experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_RDWR, 0); e != experimentalsys.EEXIST {
		t.Errorf("create existing with O_EXCL: %v, want EEXIST", e)
	}
	must(t, errOf(f.Mkdir("dir/sub", 0o700)))
	if st, e := f.Lstat("dir/sub"); e != 0 || st.Mode != fs.ModeDir|0o750 {
		t.Errorf("mkdir mode: %v, %v; want drwxr-x--- (0777 less umask 027)", st.Mode, e)
	}
	must(t, errOf(f.Link("dir/new", "dir/sub/hard")))
	must(t, errOf(f.Rename("dir/sub/hard", "dir/moved")))
	must(t, errOf(f.Symlink("/dir/moved", "dir/link")))
	if got, e := read(f, "dir/link"); got != "hello" || e != 0 {
		t.Errorf("read through a link: %q, %v", got, e)
	}
	if _, e := f.OpenFile("dir/link", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); e != experimentalsys.ELOOP {
		t.Errorf("open a link with O_NOFOLLOW: %v, want ELOOP", e)
	}
	if st, e := f.Lstat("dir/link"); e != 0 || st.Mode&fs.ModeSymlink == 0 {
		t.Errorf("lstat link: %v, %v", st.Mode, e)
	}
	if st, e := f.Lstat("dir/sub/"); e != 0 || !st.Mode.IsDir() {
		t.Errorf("lstat dir/sub/: %v, %v", st.Mode, e)
	}
	if e := f.Unlink("dir/new/"); e != experimentalsys.ENOTDIR {
		t.Errorf("unlink a file with a trailing slash: %v, want ENOTDIR", e)
	}
	dir, e := f.OpenFile("dir", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if e != 0 {
		t.Fatal(e)
	}
	defer dir.Close()
	names := func() string {
		ents, e := dir.Readdir(-1)
		must(t, errOf(e))
		var n []string
		for _, d := range ents {
			n = append(n, d.Name)
		}
		slices.Sort(n)
		return strings.Join(n, ",")
	}
	if got := names(); got != "link,moved,new,sub" {
		t.Errorf("readdir: %s", got)
	}
	if got := names(); got != "" {
		t.Errorf("readdir at the end: %q", got)
	}
	if _, e := dir.Seek(0, 0); e != 0 {
		t.Fatal(e)
	}
	if got := names(); got != "link,moved,new,sub" {
		t.Errorf("readdir after a rewind: %s", got)
	}
	for _, p := range []string{"dir/link", "dir/moved", "dir/new"} {
		must(t, errOf(f.Unlink(p)))
	}
	if e := f.Rmdir("dir"); e != experimentalsys.ENOTEMPTY {
		t.Errorf("rmdir a non-empty directory: %v", e)
	}
	must(t, errOf(f.Rmdir("dir/sub")))
}

func errOf(e experimentalsys.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestCreds: with a container user's credentials, the kernel checks its permissions and new files
// get its owner and group, or a setgid directory's group; the shim's thread gets its own back.
func TestCreds(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	fsGroup := filepath.Join(w.root, "fsgroup")
	must(t, os.Mkdir(fsGroup, 0o775))
	must(t, os.Chown(fsGroup, 0, 2000))
	must(t, unix.Chmod(fsGroup, 0o2775)) // os.Chmod would drop the setgid bit given as a number
	private := filepath.Join(w.root, "private")
	must(t, os.Mkdir(private, 0o700))
	must(t, os.Chmod(w.root, 0o777))

	f := openFS(t, w.root, Options{Creds: NewCreds(1000, 3000, []uint32{2000}), Umask: DefaultUmask})
	for _, tc := range []struct {
		path     string
		dir      bool
		uid, gid uint32
		mode     os.FileMode
	}{
		{"plain", false, 1000, 3000, 0o644},
		{"plain-dir", true, 1000, 3000, os.ModeDir | 0o755},
		{"fsgroup/file", false, 1000, 2000, 0o644},
		{"fsgroup/dir", true, 1000, 2000, os.ModeDir | os.ModeSetgid | 0o755},
	} {
		if tc.dir {
			must(t, errOf(f.Mkdir(tc.path, 0)))
		} else {
			file, e := f.OpenFile(tc.path, experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0)
			must(t, errOf(e))
			file.Close()
		}
		st, err := os.Lstat(filepath.Join(w.root, tc.path))
		must(t, err)
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != tc.uid || sys.Gid != tc.gid || st.Mode() != tc.mode {
			t.Errorf("%s: owner %d:%d mode %v; want %d:%d %v", tc.path, sys.Uid, sys.Gid, st.Mode(), tc.uid, tc.gid, tc.mode)
		}
	}
	if _, e := read(f, "private/x"); e != experimentalsys.EACCES {
		t.Errorf("read in a directory only root may search: %v, want EACCES", e)
	}
	if e := f.Utimens("f", 1, 1); e != experimentalsys.EPERM {
		t.Errorf("set the times of root's file: %v, want EPERM", e)
	}
	// The calling thread is root again: root's FS creates root's files.
	root := openFS(t, w.root, Options{})
	file, e := root.OpenFile("by-root", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0)
	must(t, errOf(e))
	file.Close()
	st, err := os.Lstat(filepath.Join(w.root, "by-root"))
	must(t, err)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("a file created without credentials after a call with them belongs to %d:%d", sys.Uid, sys.Gid)
	}
	if NewCreds(0, 0, []uint32{1, 2}) != nil {
		t.Error("root's credentials need no switch")
	}
}

// TestOpenErrors: a mount source that is missing or not a directory fails Open with its path.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, dir := range []string{filepath.Join(w.dir, "missing"), filepath.Join(w.root, "f")} {
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("Open %s: %v", dir, err)
		} else if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("Open %s: %v, want ENOENT or ENOTDIR", dir, err)
		}
	}
}
