package wazerorun

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// allocator backs the linear memories of one run. Each memory is one anonymous mapping reserved
// at its largest size (the memory limit, or the module's maximum), so growing never copies and
// pages cost nothing until the guest touches them. wazero's default, a Go slice grown by
// append, copies the whole memory on every growth, which a Go guest does several times while
// starting. Growth beyond limit is refused, remembered and reported to onRefuse.
type allocator struct {
	limit    uint64 // 0: only the module's maximum applies
	onRefuse func() // called (on the guest's goroutine) when growth beyond limit is refused

	mu       sync.Mutex
	want     uint64   // the largest refused size
	mappings [][]byte // unmapped by release
}

// Allocate reserves the memory; when the address space cannot be reserved it falls back to a
// Go slice that grows by copying.
func (a *allocator) Allocate(_, maxBytes uint64) experimental.LinearMemory {
	size := maxBytes
	if a.limit > 0 {
		size = min(size, a.limit)
	}
	if size > 0 {
		b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err == nil {
			a.mu.Lock()
			a.mappings = append(a.mappings, b)
			a.mu.Unlock()
			return &linearMemory{a: a, buf: b[:0]}
		}
	}
	return &linearMemory{a: a, growable: true}
}

// refused returns the largest size the guest asked for beyond the limit, 0 if none.
func (a *allocator) refused() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.want
}

// release unmaps the memories. It must only run once the guest has stopped: wazero frees a
// memory (LinearMemory.Free) when the module is closed, which may happen on cancellation while
// guest code still runs, so unmapping there could fault.
func (a *allocator) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.mappings {
		_ = unix.Munmap(b)
	}
	a.mappings = nil
}

type linearMemory struct {
	a        *allocator
	buf      []byte
	growable bool // a Go slice (the mapping failed): grow by copying
}

func (l *linearMemory) Reallocate(size uint64) []byte {
	if (l.a.limit > 0 && size > l.a.limit) || (!l.growable && size > uint64(cap(l.buf))) {
		l.a.mu.Lock()
		l.a.want = max(l.a.want, size)
		l.a.mu.Unlock()
		if l.a.onRefuse != nil {
			l.a.onRefuse()
		}
		return nil
	}
	if size > uint64(cap(l.buf)) {
		l.buf = append(l.buf[:cap(l.buf)], make([]byte, size-uint64(cap(l.buf)))...)
	}
	l.buf = l.buf[:size]
	return l.buf
}

// Free drops the reference; the mapping itself is released by allocator.release after the run.
func (l *linearMemory) Free() { l.buf = nil }
