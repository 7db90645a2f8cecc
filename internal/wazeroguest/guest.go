package wazeroguest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// Build compiles the Go guest for wasip1/wasm into a temporary directory and returns the .wasm path.
// It skips t under -short (building takes seconds, half a minute with a cold cache).
func Build(t testing.TB) string {
	t.Helper()
	testenv.Integration(t)
	out, err := BuildTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BuildTo compiles the Go guest for wasip1/wasm into dir/guest.wasm and returns that path.
func BuildTo(dir string) (string, error) {
	return build(dir, "./testdata/guest", "guest.wasm", "wasip1", "wasm")
}

// BuildProbeTo compiles the sandbox probe (testdata/probe: a Go guest that calls WASI's path and
// file functions directly, to try ways out of its mounts) for wasip1/wasm into dir/probe.wasm.
func BuildProbeTo(dir string) (string, error) {
	return build(dir, "./testdata/probe", "probe.wasm", "wasip1", "wasm")
}

// BuildNativeTo compiles the same program as a static linux binary for this machine into dir/guest,
// the runc equivalent of the Wasm guest for comparisons.
func BuildNativeTo(dir string) (string, error) {
	return build(dir, "./testdata/guest", "guest", "linux", runtime.GOARCH)
}

func build(dir, pkg, name, goos, goarch string) (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("wazeroguest: cannot locate the guest's source")
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = filepath.Dir(self)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s for %s/%s in %s: %w\n%s", pkg, goos, goarch, cmd.Dir, err, b)
	}
	return out, nil
}

// Tiny returns a hand-assembled WASI command module (a few hundred bytes) whose _start writes
// message to stdout with fd_write and calls proc_exit(exitCode). It has one page of memory.
func Tiny(message string, exitCode uint32) []byte {
	const (
		wasi     = "wasi_snapshot_preview1"
		i32      = 0x7f
		dataBase = 16 // the iovec lives at 0, the message at 16, nwritten at 8
	)
	var m bytes.Buffer
	m.Write([]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00})

	// types: 0 = fd_write (i32 i32 i32 i32) -> i32, 1 = proc_exit (i32) -> (), 2 = _start () -> ()
	section(&m, 1, vec(3,
		[]byte{0x60, 4, i32, i32, i32, i32, 1, i32},
		[]byte{0x60, 1, i32, 0},
		[]byte{0x60, 0, 0},
	))
	section(&m, 2, vec(2,
		cat(name(wasi), name("fd_write"), []byte{0x00, 0}),
		cat(name(wasi), name("proc_exit"), []byte{0x00, 1}),
	))
	section(&m, 3, vec(1, []byte{2}))       // function 2 (after two imports) has type 2
	section(&m, 5, vec(1, []byte{0x00, 1})) // one memory, min 1 page, no max
	section(&m, 7, vec(2,
		cat(name("memory"), []byte{0x02, 0}),
		cat(name("_start"), []byte{0x00, 2}),
	))
	body := cat(
		[]byte{0},                                                                 // no locals
		i32const(1), i32const(0), i32const(1), i32const(8), []byte{0x10, 0, 0x1a}, // call fd_write; drop
		i32const(int32(exitCode)), []byte{0x10, 1}, // call proc_exit
		[]byte{0x0b},
	)
	section(&m, 10, vec(1, cat(uleb(uint32(len(body))), body)))
	data := make([]byte, dataBase, dataBase+len(message))
	binary.LittleEndian.PutUint32(data[0:], dataBase)
	binary.LittleEndian.PutUint32(data[4:], uint32(len(message)))
	data = append(data, message...)
	section(&m, 11, vec(1, cat([]byte{0x00}, i32const(0), []byte{0x0b}, uleb(uint32(len(data))), data)))
	return m.Bytes()
}

func section(m *bytes.Buffer, id byte, content []byte) {
	m.WriteByte(id)
	m.Write(uleb(uint32(len(content))))
	m.Write(content)
}

func vec(n uint32, items ...[]byte) []byte { return cat(append([][]byte{uleb(n)}, items...)...) }

func name(s string) []byte { return cat(uleb(uint32(len(s))), []byte(s)) }

func i32const(v int32) []byte { return cat([]byte{0x41}, sleb(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		done := (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}
