//go:build linux

package wazerofs

import (
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

var (
	programSeed  = flag.Uint64("wazerofs.seed", 0, "seed of TestRandomPrograms (0: from the clock)")
	programCount = flag.Int("wazerofs.programs", 200, "how many random programs TestRandomPrograms runs")
)

// FuzzConfinement runs random sequences of symlink, rename, link, mkdir, open, unlink and friends on
// an FS whose directory has a sibling holding what must stay out of reach, and links pointing at it
// (absolute, relative, through "..", through /proc). However the operations combine, no opened
// descriptor may refer to anything outside the mount, nothing read may be the outside's content,
// and nothing outside may change. `make fuzz` fuzzes it; `go test` runs the seed corpus.
func FuzzConfinement(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		[]byte("\x0b\x01\x00\x05\x00\x00\x01\x05\x00"),         // symlink then write through it
		[]byte("\x06\x02\x0a\x01\x09\x01\x0a\x02\x0b\x0c\x00"), // mkdir, rename, link
		[]byte("\x0b\x03\x05\x07\x10\x01\x07\x03\x01\x07\x00\x02"),
		[]byte("\x09\x02\x00\x06\x02\x06\x0b\x02\x04\x00\x0a\x02\x04\x01\x05\x01\x04\x00"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, program []byte) { runProgram(t, program) })
}

// TestRandomPrograms runs a bounded number of random programs (FuzzConfinement's checks); the seed
// is printed, and -wazerofs.seed reruns one, -wazerofs.programs runs more.
func TestRandomPrograms(t *testing.T) {
	t.Parallel()
	seed := *programSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -wazerofs.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for range *programCount {
		program := make([]byte, 8+r.IntN(120))
		for i := range program {
			program[i] = byte(r.Uint32())
		}
		if !t.Run("", func(t *testing.T) { runProgram(t, program) }) {
			t.Fatalf("program %q breaks out (seed %d)", program, seed)
		}
	}
}

// TestConcurrentRenames moves directories up and down while lookups walk ".." through them, the
// race RESOLVE_IN_ROOT guards against; nothing outside may be reached.
func TestConcurrentRenames(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	fs := openFS(t, w.root, Options{})
	must(t, os.MkdirAll(w.root+"/m/n/o", 0o755))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Move m/n/o to the top and back, so that o/../.. sometimes points above m.
			if i%2 == 0 {
				fs.Rename("m/n/o", "o")
			} else {
				fs.Rename("o", "m/n/o")
			}
		}
	})
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, p := range []string{"m/n/o/../../../outside/secret", "o/../../outside/secret", "m/n/o/../../../../../outside/dir/secret"} {
			if got, _ := read(fs, p); strings.Contains(got, outsideText) {
				t.Errorf("read %s: the outside's content", p)
			}
		}
	}
	close(stop)
	wg.Wait()
	checkOutside(t, w)
}

// runProgram interprets program as operations on a fresh world and checks that nothing escaped.
func runProgram(t *testing.T, program []byte) {
	w := newWorld(t)
	fs := openFS(t, w.root, Options{Umask: DefaultUmask})
	p := &programReader{b: program, outside: strings.TrimPrefix(w.outside, "/")}
	targets := []string{"../outside", w.outside, "/", "..", "../..", "/proc/self/root", "a", "/a/b",
		"x", "../../../../..", "f", "/proc/self/cwd", w.outside + "/secret", "a/b/back"}
	var opened []experimentalsys.File
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()
	for !p.done() {
		var file experimentalsys.File
		var e experimentalsys.Errno
		switch op := p.next() % 17; op {
		case 0, 1, 2, 3, 4, 5, 16:
			flags := []experimentalsys.Oflag{
				experimentalsys.O_RDONLY,
				experimentalsys.O_CREAT | experimentalsys.O_WRONLY,
				experimentalsys.O_TRUNC | experimentalsys.O_RDWR,
				experimentalsys.O_CREAT | experimentalsys.O_EXCL | experimentalsys.O_RDWR,
				experimentalsys.O_APPEND | experimentalsys.O_RDWR,
				experimentalsys.O_DIRECTORY | experimentalsys.O_RDONLY,
				experimentalsys.O_NOFOLLOW | experimentalsys.O_RDONLY,
			}[min(op, 6)]
			if file, e = fs.OpenFile(p.path(), flags, 0); e == 0 {
				opened = append(opened, file)
				checkFile(t, w, file)
			}
		case 6:
			fs.Mkdir(p.path(), 0o755)
		case 7:
			fs.Rmdir(p.path())
		case 8:
			fs.Unlink(p.path())
		case 9:
			fs.Rename(p.path(), p.path())
		case 10:
			fs.Link(p.path(), p.path())
		case 11:
			target := targets[int(p.next())%len(targets)]
			fs.Symlink(target, p.path())
		case 12:
			fs.Stat(p.path())
		case 13:
			fs.Lstat(p.path())
		case 14:
			fs.Readlink(p.path())
		case 15:
			fs.Utimens(p.path(), 1, 1)
		}
	}
	checkOutside(t, w)
}

// checkFile fails t when an opened file lies outside the mount (where the kernel says its
// descriptor points), holds the outside's content or is a device, and exercises it (write, read
// back, list).
func checkFile(t *testing.T, w *world, f experimentalsys.File) {
	t.Helper()
	fd := f.(*file).fd
	where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	if where != w.root && !strings.HasPrefix(where, w.root+"/") {
		t.Fatalf("opened %s, outside the mount %s", where, w.root)
	}
	if isDir, _ := f.IsDir(); isDir {
		f.Readdir(-1)
		return
	}
	f.Write([]byte("FUZZ"))
	buf := make([]byte, 64)
	n, _ := f.Pread(buf, 0)
	if strings.Contains(string(buf[:n]), outsideText) {
		t.Fatalf("read the outside's content through %s", where)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR {
		t.Fatalf("opened a device: %s", where)
	}
}

// programReader hands out the bytes of a program and builds paths from them.
type programReader struct {
	b       []byte
	outside string // the outside directory's absolute path without its leading slash
}

func (p *programReader) done() bool { return len(p.b) == 0 }

func (p *programReader) next() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

// path builds a path of one to four components from the vocabulary, sometimes absolute.
func (p *programReader) path() string {
	vocab := []string{"a", "b", "f", "g", "x", "y", "out", "abs", "up", "procself", "..", ".", "a/b/back",
		p.outside, "secret", "dir", "zone", "abs-secret"}
	c := p.next()
	var parts []string
	for range 1 + int(c&3) {
		parts = append(parts, vocab[int(p.next())%len(vocab)])
	}
	path := strings.Join(parts, "/")
	if c&4 != 0 {
		path = "/" + path
	}
	if c&8 != 0 {
		path += "/"
	}
	return path
}
