package controller

import (
	"strconv"
	"sync"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// labelWrites remembers the node labels this manager wrote until its node cache shows them, so that the
// next reconcile reads its own writes. Without it, a reconcile that runs before the cache has the new
// label plans the same result again: a second PATCH and Event, and a success that slow start counts
// twice. A write is shown once the cached node's resourceVersion reaches the one the PATCH returned
// (resourceVersions are etcd revisions, as kube-scheduler's assume cache also relies on); a node whose
// version cannot be read is taken from the cache as it is.
type labelWrites struct {
	mu     sync.Mutex
	byNode map[labelKey]labelWrite
}

type labelKey struct{ shim, node string }

type labelWrite struct {
	state           v1alpha1.NodeState
	hash            string
	resourceVersion uint64
}

// wrote records a label change that the API server stored at resourceVersion.
func (w *labelWrites) wrote(shim string, c rollout.Change, resourceVersion string) {
	rv, err := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNode == nil {
		w.byNode = map[labelKey]labelWrite{}
	}
	w.byNode[labelKey{shim, c.Node}] = labelWrite{c.State, c.Hash, rv}
}

// of returns the Shim's writes by node, for one reconcile's view (see labelView).
func (w *labelWrites) of(shim string) map[string]labelWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]labelWrite{}
	for k, lw := range w.byNode {
		if k.shim == shim {
			out[k.node] = lw
		}
	}
	return out
}

// labelView returns a Shim's state and hash of a cached node, given its cached ones and the Shim's
// writes (from of): the last written ones while the cache is older than that write, else the cached
// ones (and the write is forgotten).
func (w *labelWrites) labelView(shim string, writes map[string]labelWrite, n *cachedNode, state v1alpha1.NodeState, hash string) (v1alpha1.NodeState, string) {
	lw, ok := writes[n.Name]
	if !ok {
		return state, hash
	}
	if rv, err := strconv.ParseUint(n.ResourceVersion, 10, 64); err == nil && rv < lw.resourceVersion {
		return lw.state, lw.hash
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.byNode[labelKey{shim, n.Name}]; ok && cur == lw {
		delete(w.byNode, labelKey{shim, n.Name})
	}
	return state, hash
}

// forget drops the Shim's writes on nodes that are gone (all of them when gone is nil: the Shim is gone).
func (w *labelWrites) forget(shim string, gone func(node string) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.byNode {
		if k.shim == shim && (gone == nil || gone(k.node)) {
			delete(w.byNode, k)
		}
	}
}
