package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// statusInterval is how often at most a Shim's status is written when only its rollout's progress
// changed (node counts, wave size, condition messages). During a large rollout nearly every reconcile
// changes the counts; writing each time would put an API round trip on every reconcile's path. Other
// changes (a condition's status or reason, the spec hash, the observed generation) are written at once.
const statusInterval = time.Second

// shimMemory is what the controller remembers about each Shim from one reconcile to the next.
type shimMemory struct {
	mu     sync.Mutex
	byShim map[string]remembered
}

type remembered struct {
	uid types.UID
	// wave is the wave size the last plan returned (slow start, see rollout.Input.Wave). The status
	// holds it too, but a reconcile can read the Shim from the cache before the status the last one
	// wrote has arrived: a wave that a failure dropped to 1 must not grow again from that older copy.
	// The status seeds it when the manager starts.
	wave int
	// statusWritten is when the status was last written.
	statusWritten time.Time
}

// get returns what is remembered about this Shim (by UID), or nothing.
func (m *shimMemory) get(shim *v1alpha1.Shim) remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.byShim[shim.Name]; ok && r.uid == shim.UID {
		return r
	}
	return remembered{uid: shim.UID, wave: int(shim.Status.Rollout.WaveSize)}
}

func (m *shimMemory) update(shim *v1alpha1.Shim, f func(*remembered)) {
	r := m.get(shim)
	f(&r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byShim == nil {
		m.byShim = map[string]remembered{}
	}
	m.byShim[shim.Name] = r
}

// wave returns the Shim's wave size: the last one set, else its status'.
func (m *shimMemory) wave(shim *v1alpha1.Shim) int { return m.get(shim).wave }

func (m *shimMemory) setWave(shim *v1alpha1.Shim, size int) {
	m.update(shim, func(r *remembered) { r.wave = size })
}

// statusWait returns how long a status change that is only progress waits before it is written.
func (m *shimMemory) statusWait(shim *v1alpha1.Shim, now time.Time) time.Duration {
	return max(0, m.get(shim).statusWritten.Add(statusInterval).Sub(now))
}

func (m *shimMemory) wroteStatus(shim *v1alpha1.Shim, at time.Time) {
	m.update(shim, func(r *remembered) { r.statusWritten = at })
}

func (m *shimMemory) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byShim, name)
}
