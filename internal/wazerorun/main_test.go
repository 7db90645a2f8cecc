package wazerorun_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/internal/wazerorun"
)

// The Go guest is built once per test binary; guestCache lets tests other than the cache test
// skip recompiling it.
var (
	guestWasm  []byte
	guestCache string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "wazerorun")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		path, err := wazeroguest.BuildTo(dir)
		if err == nil {
			guestWasm, err = os.ReadFile(path)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		guestCache = dir
	}
	return m.Run()
}

// goGuest compiles the Go guest (from the shared cache) with the given memory limit.
func goGuest(t *testing.T, limit int64) *wazerorun.Module {
	t.Helper()
	testenv.Integration(t)
	return compile(t, guestWasm, wazerorun.Options{CacheDir: guestCache, MemoryLimit: limit})
}
