package controller

import (
	"errors"
	"math"
	"strconv"
	"sync"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// labelWrites remembers the node labels (with the hash and runtime annotations written with them) this
// manager wrote until its node cache shows them, so that the next reconcile reads its own writes. Without it, a reconcile that runs before the cache has the new
// label plans the same result again: a second PATCH and Event, and a success that slow start counts
// twice. A write is shown once the cached node's resourceVersion reaches the one the PATCH returned
// (resourceVersions are etcd revisions, as kube-scheduler's assume cache also relies on); a node whose
// version cannot be read is taken from the cache as it is. Node writes run while the next reconcile
// plans (see nodeWriter): a write counts from the moment it is queued, and is forgotten if it fails.
type labelWrites struct {
	mu     sync.Mutex
	byNode map[labelKey]labelWrite
	last   uint64 // the last write's token
}

type labelKey struct{ shim, node string }

type labelWrite struct {
	state         v1alpha1.NodeState
	hash, runtime string
	// resourceVersion is the node's version that the API server stored the write at; pending until
	// it answered.
	resourceVersion uint64
	token           uint64
}

// pending is the resourceVersion of a write the API server has not answered yet: newer than any cache.
const pending = math.MaxUint64

// begin records a label change that is about to be written, and returns its token for done.
func (w *labelWrites) begin(shim string, c rollout.Change) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byNode == nil {
		w.byNode = map[labelKey]labelWrite{}
	}
	w.last++
	w.byNode[labelKey{shim, c.Node}] = labelWrite{c.State, c.Hash, c.Runtime, pending, w.last}
	return w.last
}

// done records how the write of token ended: stored at resourceVersion, or failed (err != nil), when
// the change is forgotten and the cache's labels count again. A later write to the node replaces an
// earlier one, whose end then changes nothing.
func (w *labelWrites) done(shim, node string, token uint64, resourceVersion string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := labelKey{shim, node}
	lw, ok := w.byNode[key]
	if !ok || lw.token != token {
		return
	}
	rv, perr := strconv.ParseUint(resourceVersion, 10, 64)
	if err != nil || perr != nil {
		delete(w.byNode, key)
		return
	}
	lw.resourceVersion = rv
	w.byNode[key] = lw
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

// labelView returns a Shim's state, hash and runtime of a cached node, given its cached ones and the
// Shim's writes (from of): the last written ones while the cache is older than that write, else the
// cached ones (and the write is forgotten).
func (w *labelWrites) labelView(shim string, writes map[string]labelWrite, n *cachedNode,
	state v1alpha1.NodeState, hash, runtime string) (v1alpha1.NodeState, string, string) {
	lw, ok := writes[n.Name]
	if !ok {
		return state, hash, runtime
	}
	if lw.resourceVersion == pending {
		return lw.state, lw.hash, lw.runtime
	}
	if rv, err := strconv.ParseUint(n.ResourceVersion, 10, 64); err == nil && rv < lw.resourceVersion {
		return lw.state, lw.hash, lw.runtime
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.byNode[labelKey{shim, n.Name}]; ok && cur == lw {
		delete(w.byNode, labelKey{shim, n.Name})
	}
	return state, hash, runtime
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

// forgetTokens forgets writes to a node that were queued but will not be sent.
func (w *labelWrites) forgetTokens(shim, node string, tokens []uint64) {
	for _, t := range tokens {
		w.done(shim, node, t, "", errNotSent)
	}
}

var errNotSent = errors.New("not sent")
