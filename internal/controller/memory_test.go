package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// TestShimMemoryWave: a success whose result was not written is taken back from the wave size once,
// by the next plan, never below 1 and never from a wave that is not known yet; and plans wait
// planIntervalFactor times their own duration, at least minPlanInterval.
func TestShimMemoryWave(t *testing.T) {
	t.Parallel()
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "spin", UID: "u1"}}
	var m shimMemory
	if got := m.wave(shim); got != 0 {
		t.Fatalf("wave of a new Shim %d, want 0 (unknown)", got)
	}
	m.uncount(shim)
	if got := m.wave(shim); got != 0 {
		t.Errorf("unknown wave after a take-back: %d, want still 0", got)
	}
	now := time.Now()
	m.planned(shim, 8, now, 20*time.Millisecond)
	m.uncount(shim)
	m.uncount(shim)
	if got := m.wave(shim); got != 6 {
		t.Errorf("wave 8 less two take-backs: %d, want 6", got)
	}
	if got := m.wave(shim); got != 6 {
		t.Errorf("a take-back counted twice: wave %d, want 6", got)
	}
	for range 10 {
		m.uncount(shim)
	}
	if got := m.wave(shim); got != 1 {
		t.Errorf("wave after more take-backs than its size: %d, want 1", got)
	}
	if got := m.planWait(shim, now); got != 4*20*time.Millisecond {
		t.Errorf("after a 20 ms plan the next waits %s, want 80ms", got)
	}
	m.planned(shim, 1, now, time.Millisecond)
	if got := m.planWait(shim, now); got != minPlanInterval {
		t.Errorf("after a 1 ms plan the next waits %s, want %s", got, minPlanInterval)
	}
	// Another Shim of the same name (a new UID) starts afresh.
	if got := m.wave(&v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "spin", UID: "u2"}}); got != 0 {
		t.Errorf("wave of a re-created Shim %d, want 0", got)
	}
}
