package controller

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// Node writes run beside the planning. A reconcile plans, records what its writes will change (the
// labels in labelWrites, the Jobs in jobExpectations, both before any request is sent) and queues the
// writes to the nodeWriter; then it returns, and the next reconcile of the Shim plans while they run.
// Each API round trip thus delays the nodes it writes, not the whole rollout: with the writes inside the
// reconcile, one Shim's rollout started a few nodes per round trip however large it was.
//
// Order is kept where an observer could tell: a node's writes run in the order they were queued; a
// plan's starts (the installing and uninstalling labels) run only after the results (ready, failed,
// removed labels) of that plan and of every plan before it; and a failure is written only after the
// starts planned before it. So the labels never show more nodes in flight than the results so far
// allow. A start's Job is created with the results, since the budget counts Jobs as soon as they are
// queued (jobExpectations). A write that fails is forgotten (its label or Job counts no more; a success
// it reported is taken back from the wave size, see shimMemory.uncount) and reported by the Shim's next
// reconcile, which the writer triggers.

// writeQueueLength bounds the writes waiting for a worker; a reconcile that finds the queue full waits.
const writeQueueLength = 8192

// nodeWriter runs queued node writes on writeParallelism workers, in queue order. A task waits for the
// tasks it depends on, which were all queued before it, so that the oldest unfinished task can always
// run. Start it with the manager (it is a Runnable).
type nodeWriter struct {
	queue chan *writeTask
	// wake receives a Shim whose write failed, so that it is reconciled again.
	wake chan event.GenericEvent

	mu sync.Mutex
	// lastOfNode is the last task queued for a node's labels of a Shim (closed once it has ended).
	lastOfNode map[labelKey]chan struct{}
	// barriers are the Shims' last barriers (see barrier), by kind.
	barriers map[string][barrierKinds]chan struct{}
	// queued counts a Shim's tasks that have not ended.
	queued map[string]int
	// errs are the errors of a Shim's writes since its last reconcile.
	errs map[string][]error
}

// writeTask is one node's writes of one plan, or (with no run) a barrier.
type writeTask struct {
	shim, node string // node is "" for a barrier
	after      []chan struct{}
	run        func(context.Context) error
	done       chan struct{}
}

func newNodeWriter() *nodeWriter {
	return &nodeWriter{
		queue: make(chan *writeTask, writeQueueLength), wake: make(chan event.GenericEvent),
		lastOfNode: map[labelKey]chan struct{}{}, barriers: map[string][barrierKinds]chan struct{}{},
		queued: map[string]int{}, errs: map[string][]error{},
	}
}

// Start runs the workers until ctx ends. Writes still queued then are dropped: a new leader plans
// again from what the API server has.
func (w *nodeWriter) Start(ctx context.Context) error {
	var workers sync.WaitGroup
	for range writeParallelism {
		workers.Go(func() {
			for {
				select {
				case t := <-w.queue:
					w.runTask(ctx, t)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	workers.Wait()
	return nil
}

func (w *nodeWriter) runTask(ctx context.Context, t *writeTask) {
	for _, c := range t.after {
		select {
		case <-c:
		case <-ctx.Done():
		}
	}
	var err error
	if t.run != nil {
		if err = ctx.Err(); err == nil {
			err = t.run(ctx)
		}
	}
	close(t.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	if key := (labelKey{t.shim, t.node}); t.node != "" && w.lastOfNode[key] == t.done {
		delete(w.lastOfNode, key) // no later task of the node waits for this one
	}
	if w.queued[t.shim]--; w.queued[t.shim] <= 0 {
		delete(w.queued, t.shim)
	}
	if err == nil || ctx.Err() != nil {
		return
	}
	w.errs[t.shim] = append(w.errs[t.shim], err)
	go func() { // not under w.mu; the controller may be busy
		select {
		case w.wake <- event.GenericEvent{Object: &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: t.shim}}}:
		case <-ctx.Done():
		}
	}()
}

// enqueue queues a task of shim that runs after the tasks in after and, when node is not "", after the
// node's earlier tasks of the Shim.
func (w *nodeWriter) enqueue(shim, node string, after []chan struct{}, run func(context.Context) error) chan struct{} {
	t := &writeTask{shim: shim, node: node, after: after, run: run, done: make(chan struct{})}
	w.mu.Lock()
	if node != "" {
		key := labelKey{shim, node}
		if prev, ok := w.lastOfNode[key]; ok {
			t.after = append(t.after, prev)
		}
		w.lastOfNode[key] = t.done
	}
	w.queued[shim]++
	w.mu.Unlock()
	w.queue <- t
	return t.done
}

// The barriers of a Shim's writes.
const (
	resultsWritten = iota // every result write queued so far has ended
	startsWritten         // every start write queued so far has ended
	barrierKinds
)

// barrier queues a barrier of a kind that ends once the given tasks and the Shim's previous barrier of
// that kind have ended. A Shim's reconciles, which call it, never run at the same time.
func (w *nodeWriter) barrier(shim string, kind int, tasks []chan struct{}) chan struct{} {
	if prev := w.lastBarrier(shim, kind); prev != nil {
		tasks = append(tasks, prev)
	}
	done := w.enqueue(shim, "", tasks, nil)
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.barriers[shim]
	b[kind] = done
	w.barriers[shim] = b
	return done
}

// lastBarrier returns the Shim's last barrier of a kind (nil: none).
func (w *nodeWriter) lastBarrier(shim string, kind int) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.barriers[shim][kind]
}

// takeErrors returns the errors of the Shim's writes since the last call, and forgets them.
func (w *nodeWriter) takeErrors(shim string) []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	errs := w.errs[shim]
	delete(w.errs, shim)
	return errs
}

// busy reports whether writes of the Shim are queued or running.
func (w *nodeWriter) busy(shim string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued[shim] > 0
}
