package wazeroshim

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestGCPause: overlapping holds switch the collector off once, with a memory limit, and the last
// release restores GOGC and the limit exactly.
func TestGCPause(t *testing.T) {
	// Not parallel: GOGC and the memory limit belong to the whole test process.
	percent := debug.SetGCPercent(70)
	t.Cleanup(func() { debug.SetGCPercent(percent) })
	limit := debug.SetMemoryLimit(-1) // -1 only reads it

	var g gcPause
	first := g.hold()
	second := g.hold()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC while held: %d, want off (-1)", p)
	}
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 || l == limit {
		t.Errorf("memory limit while the collector is off: %d, want one set for the compile", l)
	}
	first()
	first() // releasing twice counts once
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC after one of two releases: %d, want still off", p)
	}
	second()
	if p := debug.SetGCPercent(-1); p != 70 {
		t.Errorf("GOGC after the last release: %d, want 70", p)
	}
	debug.SetGCPercent(70)
	if l := debug.SetMemoryLimit(-1); l != limit {
		t.Errorf("memory limit after the last release: %d, want %d again", l, limit)
	}
}
