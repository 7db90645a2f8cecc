package wazerorun_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/internal/wazerorun"
)

func compile(t *testing.T, wasm []byte, o wazerorun.Options) *wazerorun.Module {
	t.Helper()
	m, err := wazerorun.Prepare(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	if err := m.Compile(t.Context(), wasm); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTinyModule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		exit uint32
	}{{"exit 0", 0}, {"exit 7", 7}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := compile(t, wazeroguest.Tiny("hi from tiny\n", tc.exit), wazerorun.Options{})
			var out testenv.Buffer
			res, err := m.Run(t.Context(), wazerorun.Process{Args: []string{"tiny.wasm"}, Stdout: &out})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != int(tc.exit) || out.String() != "hi from tiny\n" {
				t.Fatalf("got exit %d, stdout %q; want exit %d and the message", res.ExitCode, out.String(), tc.exit)
			}
		})
	}
}

func TestEntryFunction(t *testing.T) {
	t.Parallel()
	m := compile(t, wazeroguest.Tiny("x", 0), wazerorun.Options{})
	if err := m.CheckEntry(""); err != nil {
		t.Fatalf("_start: %v", err)
	}
	if err := m.CheckEntry("nope"); !errors.Is(err, wazerorun.ErrNoEntry) {
		t.Fatalf("missing export: got %v, want ErrNoEntry", err)
	}
	if _, err := m.Run(t.Context(), wazerorun.Process{Entry: "nope"}); !errors.Is(err, wazerorun.ErrNoEntry) {
		t.Fatalf("run missing export: got %v, want ErrNoEntry", err)
	}
}

func TestGoGuest(t *testing.T) {
	t.Parallel()
	m := goGuest(t, 0)

	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "message.txt"), []byte("from the rootfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()

	for _, tc := range []struct {
		name           string
		args           []string
		readOnly       bool
		exit           int
		stdout, stderr string
	}{
		{name: "argv", args: []string{"/app.wasm", "hello", "a b"}, stdout: `argv=["/app.wasm" "hello" "a b"]`, stderr: "hello on stderr"},
		{name: "env", args: []string{"g", "env", "GREETING", "EMPTY"}, stdout: "GREETING=hi there\nEMPTY=\n"},
		{name: "exit code", args: []string{"g", "exit", "42"}, exit: 42, stdout: "exiting with 42"},
		{name: "rootfs", args: []string{"g", "cat", "/message.txt"}, stdout: "from the rootfs"},
		{name: "missing file", args: []string{"g", "cat", "/nope"}, exit: 3, stderr: "No such file"},
		{name: "volume write", args: []string{"g", "write", "/data/out.txt", "written"}, stdout: "wrote /data/out.txt"},
		{name: "read-only root", args: []string{"g", "write", "/new.txt", "x"}, readOnly: true, exit: 3, stderr: "write: open /new.txt"},
		{name: "unknown mode", args: []string{"g", "bogus"}, exit: 64, stderr: "unknown mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut testenv.Buffer
			res, err := m.Run(t.Context(), wazerorun.Process{
				Args:   tc.args,
				Env:    []string{"GREETING=hi there", "EMPTY="},
				Mounts: []wazerorun.Mount{{HostPath: root, GuestPath: "/", ReadOnly: tc.readOnly}, {HostPath: vol, GuestPath: "/data"}},
				Stdout: &out,
				Stderr: &errOut,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.exit || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errOut.String(), tc.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)",
					res.ExitCode, tc.exit, out.String(), tc.stdout, errOut.String(), tc.stderr)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(vol, "out.txt")); err != nil || string(b) != "written" {
		t.Fatalf("the guest's write did not reach the host volume: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("a read-only root was written: %v", err)
	}
}

// TestStop proves that cancelling the run stops a guest blocked in sleep (poll_oneoff) or spinning,
// and that the cancellation cause picks the exit code.
func TestStop(t *testing.T) {
	t.Parallel()
	m := goGuest(t, 0)
	for _, tc := range []struct {
		mode  string
		cause error
		exit  int
	}{
		{"sleep", &wazerorun.SignalError{Signal: syscall.SIGKILL}, 137},
		{"sleep", &wazerorun.SignalError{Signal: syscall.SIGTERM}, 143},
		{"spin", &wazerorun.SignalError{Signal: syscall.SIGKILL}, 137},
		{"spin", errors.New("no signal given"), 137},
	} {
		t.Run(tc.mode+" "+tc.cause.Error(), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			out := &testenv.Buffer{}
			done := make(chan wazerorun.Result, 1)
			go func() {
				res, err := m.Run(ctx, wazerorun.Process{Args: []string{"g", tc.mode}, Stdout: out})
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			waitFor(t, func() bool { return strings.Contains(out.String(), "ing") }, "the guest to start "+tc.mode)
			cancel(tc.cause)
			select {
			case res := <-done:
				if res.ExitCode != tc.exit {
					t.Fatalf("exit code %d, want %d", res.ExitCode, tc.exit)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the guest did not stop within 30s of cancellation")
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	t.Run("growth refused", func(t *testing.T) {
		t.Parallel()
		m := goGuest(t, 48<<20)
		var out, errOut testenv.Buffer
		res, err := m.Run(t.Context(), wazerorun.Process{Args: []string{"g", "grow", "96"}, Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatal(err)
		}
		if !res.MemoryLimitExceeded || res.ExitCode != 137 || res.Signal != syscall.SIGKILL || !strings.Contains(errOut.String(), "memory limit exceeded") ||
			strings.Contains(out.String(), "allocated all") {
			t.Fatalf("got %+v\nstdout %q\nstderr %q", res, out.String(), errOut.String())
		}
	})
	t.Run("within the limit", func(t *testing.T) {
		t.Parallel()
		m := goGuest(t, 256<<20)
		var out testenv.Buffer
		res, err := m.Run(t.Context(), wazerorun.Process{Args: []string{"g", "grow", "32"}, Stdout: &out})
		if err != nil || res.ExitCode != 0 || res.MemoryLimitExceeded || !strings.Contains(out.String(), "allocated all 32") {
			t.Fatalf("got %+v, %v, stdout %q", res, err, out.String())
		}
	})
	t.Run("minimum above the limit", func(t *testing.T) {
		t.Parallel()
		testenv.Integration(t)
		m, err := wazerorun.Prepare(t.Context(), wazerorun.Options{CacheDir: guestCache, MemoryLimit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		if err := m.Compile(t.Context(), guestWasm); !errors.Is(err, wazerorun.ErrMemoryLimit) {
			t.Fatalf("got %v, want ErrMemoryLimit", err)
		}
	})
}

func TestCompilationCache(t *testing.T) {
	t.Parallel()
	testenv.Integration(t)
	wasm := guestWasm
	dir := t.TempDir()
	first := compile(t, wasm, wazerorun.Options{CacheDir: dir})
	second := compile(t, wasm, wazerorun.Options{CacheDir: dir})
	other := compile(t, wazeroguest.Tiny("other", 0), wazerorun.Options{CacheDir: dir})
	if first.CacheHit || !second.CacheHit || other.CacheHit {
		t.Fatalf("cache hits: first %v, second %v, other module %v; want false, true, false",
			first.CacheHit, second.CacheHit, other.CacheHit)
	}
	t.Logf("compile %v, from cache %v", first.CompileTime, second.CompileTime)
	var out testenv.Buffer
	if res, err := second.Run(t.Context(), wazerorun.Process{Args: []string{"g"}, Stdout: &out}); err != nil || res.ExitCode != 0 {
		t.Fatalf("cached module run: %+v, %v", res, err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 60*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestPrepare compiles into a runtime prepared before the module's bytes were known, once only.
func TestPrepare(t *testing.T) {
	t.Parallel()
	m, err := wazerorun.Prepare(t.Context(), wazerorun.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	wasm := wazeroguest.Tiny("prepared\n", 0)
	if err := m.Compile(t.Context(), wasm); err != nil {
		t.Fatal(err)
	}
	if m.CacheHit {
		t.Error("first compilation into an empty cache reported a cache hit")
	}
	if err := m.Compile(t.Context(), wasm); err == nil {
		t.Error("a second Compile into the same Module succeeded")
	}
	var out testenv.Buffer
	if res, err := m.Run(t.Context(), wazerorun.Process{Stdout: &out}); err != nil || res.ExitCode != 0 || out.String() != "prepared\n" {
		t.Fatalf("run: %+v, %v, stdout %q", res, err, out.String())
	}
}
