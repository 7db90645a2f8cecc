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

// Plans of a Shim are at least minPlanInterval apart, and planIntervalFactor times as long as the last
// one took. Node writes do not hold the reconcile (see nodeWriter), and every write's watch event
// triggers the next plan: without a pause a large rollout planned back to back, its CPU taken from the
// control plane it waits for. The Jobs that finish meanwhile are taken by the next plan together.
const (
	minPlanInterval    = 50 * time.Millisecond
	planIntervalFactor = 4
)

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
	// uncounted is how many successes the wave counted whose result was not written (see uncount).
	uncounted int
	// statusWritten is when the status was last written.
	statusWritten time.Time
	// nextPlan is when the next plan may start (see minPlanInterval).
	nextPlan time.Time
}

// get returns what is remembered about this Shim (by UID), or nothing.
func (m *shimMemory) get(shim *v1alpha1.Shim) remembered {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.getLocked(shim)
}

func (m *shimMemory) getLocked(shim *v1alpha1.Shim) remembered {
	if r, ok := m.byShim[shim.Name]; ok && r.uid == shim.UID {
		return r
	}
	return remembered{uid: shim.UID, wave: int(shim.Status.Rollout.WaveSize)}
}

// update changes what is remembered about the Shim, atomically.
func (m *shimMemory) update(shim *v1alpha1.Shim, f func(*remembered)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.getLocked(shim)
	f(&r)
	if m.byShim == nil {
		m.byShim = map[string]remembered{}
	}
	m.byShim[shim.Name] = r
}

// wave returns the Shim's wave size for the next plan: the last one set, else its status', less the
// successes counted twice since (see uncount).
func (m *shimMemory) wave(shim *v1alpha1.Shim) int {
	var wave int
	m.update(shim, func(r *remembered) {
		if r.uncounted > 0 && r.wave > 0 {
			r.wave = max(1, r.wave-r.uncounted)
		}
		r.uncounted = 0
		wave = r.wave
	})
	return wave
}

// planned records a plan's wave size, and when it started and how long it took.
func (m *shimMemory) planned(shim *v1alpha1.Shim, wave int, at time.Time, took time.Duration) {
	m.update(shim, func(r *remembered) {
		r.wave = wave
		r.nextPlan = at.Add(max(minPlanInterval, planIntervalFactor*took))
	})
}

// planWait returns how long the Shim's next plan must wait.
func (m *shimMemory) planWait(shim *v1alpha1.Shim, now time.Time) time.Duration {
	return max(0, m.get(shim).nextPlan.Sub(now))
}

// uncount takes back a success that a plan counted but whose result was not written: the next plan
// plans the result, and counts it, again.
func (m *shimMemory) uncount(shim *v1alpha1.Shim) {
	m.update(shim, func(r *remembered) { r.uncounted++ })
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
