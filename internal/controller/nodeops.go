package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// One node operation per node, whichever Shim it is for. The installer's node lock makes
// concurrent operations safe; the manager keeps them from waiting on each other (and from timing out
// with NodeBusy) by starting a Job on a node only while no other Shim's Job runs there. A node that
// waits shows as pending in its Shim's status, not as failed, and does not count against that Shim's
// budget (rollout.Node.BusyWith).
//
// What occupies a node: a running Job of another Shim in the cache (the store's index of unfinished
// Jobs by node), or a Job this manager just created for another Shim that the cache has not shown yet
// (jobExpectations). A start claims the node first (claimNode), atomically across reconciles, so
// concurrent reconciles of different Shims cannot both start on one node. Every new kind of node
// operation (a verify Job, say) starts through claimNode too; a planner that starts nodes in waves
// skips the nodes rollout.Node.BusyWith marks and takes the next ones. A Shim that waits for a node
// is woken by the events of the Jobs on that node (nodeWaiters), and requeued after waitRequeue anyway.

// waitRequeue is how soon a Shim with nodes waiting for another Shim's Job is reconciled again even
// without an event.
const waitRequeue = 15 * time.Second

// nodeWaiters remembers which Shims wait for which nodes, so that a Job's events on a node wake them.
type nodeWaiters struct {
	mu     sync.Mutex
	byNode map[string]map[string]bool // node -> Shims waiting
	byShim map[string][]string        // Shim -> nodes it waits for
}

// set records the nodes a Shim waits for now (replacing what it waited for before).
func (w *nodeWaiters) set(shim string, nodes []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.byShim[shim] {
		delete(w.byNode[n], shim)
		if len(w.byNode[n]) == 0 {
			delete(w.byNode, n)
		}
	}
	delete(w.byShim, shim)
	if len(nodes) == 0 {
		return
	}
	if w.byNode == nil {
		w.byNode, w.byShim = map[string]map[string]bool{}, map[string][]string{}
	}
	w.byShim[shim] = nodes
	for _, n := range nodes {
		if w.byNode[n] == nil {
			w.byNode[n] = map[string]bool{}
		}
		w.byNode[n][shim] = true
	}
}

// of returns the Shims waiting for a node.
func (w *nodeWaiters) of(node string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.byNode[node]))
	for s := range w.byNode[node] {
		out = append(out, s)
	}
	return out
}

// shimsOfRecord maps a cached installer Job or pod to its Shim by its Shim label (the cache keeps no
// owner references; see cachedJob), and a Job also to the Shims waiting for its node. A pod's result is
// thus read as soon as it terminates, and a node that frees up is taken at once.
func (r *ShimReconciler) shimsOfRecord(_ context.Context, o client.Object) []reconcile.Request {
	var shims []string
	switch o := o.(type) {
	case *cachedJob:
		shims = append(r.waiters.of(o.Node), o.Shim)
	case *cachedPod:
		shims = []string{o.Shim}
	}
	out := make([]reconcile.Request, 0, len(shims))
	for _, s := range shims {
		if s != "" {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: s}})
		}
	}
	return out
}

// busyNodes maps each node that another Shim's Job occupies to that Shim, from the cache and the
// expectations as they are now.
func (r *ShimReconciler) busyNodes(shim string) map[string]string {
	busy := r.expect.othersByNode(shim)
	for node, other := range r.objects.othersActive(shim) {
		busy[node] = other
	}
	return busy
}

// claimNode records that shim is about to create the Job of key unless another Shim's Job occupies the
// node; it returns that Shim's name when it does (then nothing is recorded). A claimed Job that could
// not be created must be released with forget.
func (r *ShimReconciler) claimNode(key jobKey) string {
	e := &r.expect
	e.mu.Lock()
	defer e.mu.Unlock()
	if other := e.otherOnNodeLocked(key.node, key.shim); other != "" {
		return other
	}
	for _, j := range r.objects.activeJobs(key.node) {
		if j.Shim != key.shim {
			return j.Shim
		}
	}
	if e.created == nil {
		e.created = map[jobKey]time.Time{}
	}
	e.created[key] = time.Now()
	return ""
}

// mine returns the keys of the Jobs of shim created recently (see pending).
func (e *jobExpectations) mine(shim string) map[jobKey]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[jobKey]bool{}
	for k := range e.created {
		if k.shim == shim {
			out[k] = true
		}
	}
	return out
}

// othersByNode maps each node to another Shim with a Job created there that the cache has not shown yet.
func (e *jobExpectations) othersByNode(shim string) map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for k, at := range e.created {
		if k.shim != shim && time.Since(at) <= expectationTimeout {
			out[k.node] = k.shim
		}
	}
	return out
}

func (e *jobExpectations) otherOnNodeLocked(node, shim string) string {
	for k, at := range e.created {
		if k.node == node && k.shim != shim && time.Since(at) <= expectationTimeout {
			return k.shim
		}
	}
	return ""
}

// forget drops the expectation of a Job that was not created.
func (e *jobExpectations) forget(key jobKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.created, key)
}
