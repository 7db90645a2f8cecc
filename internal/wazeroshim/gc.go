package wazeroshim

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// compileHeadroom is how much memory the Go runtime may add while modules compile before the
// garbage collector runs again: loading a 3 MB module from the compilation cache allocates about
// 10 MB, compiling it cold a few times that, at most a few tens of MB live.
const compileHeadroom = 64 << 20

// gcResumeDelay is how long after a compile the collector stays off: a collection of the
// compile's garbage right away would run while Start instantiates the guest (about 2 ms of the Go
// guest's start-up); a few milliseconds usually separate the compile's end from Start.
const gcResumeDelay = 100 * time.Millisecond

// gcPause switches the garbage collector off while modules compile, up to compileHeadroom more
// memory (debug.SetMemoryLimit still collects beyond it). A freshly started shim has a tiny heap,
// so at the default GOGC decoding and validating a module (even one loaded from the cache) runs
// one or more collections that cost several milliseconds of its start-up. The zero value is ready.
type gcPause struct {
	mu      sync.Mutex
	holders int
	percent int   // GOGC to restore
	limit   int64 // memory limit to restore
}

// hold pauses the collector unless a compile already holds it and returns the function that ends
// this hold; the last one restores the collector's settings.
func (g *gcPause) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holders == 0 {
		sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
		metrics.Read(sample)
		g.limit = debug.SetMemoryLimit(int64(sample[0].Value.Uint64()) + compileHeadroom)
		g.percent = debug.SetGCPercent(-1)
	}
	g.holders++
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.holders--; g.holders == 0 {
			debug.SetGCPercent(g.percent)
			debug.SetMemoryLimit(g.limit)
		}
	})
}
