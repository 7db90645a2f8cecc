package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// ShimReconciler rolls Shims out to nodes.
type ShimReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads uncached objects (pull secrets), so that no Secret informer is started.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Metrics   *Metrics
	Platforms PlatformLister
	Jobs      JobConfig
	// HandlerDeadline is how long after an install the kubelet may take to list the handler in
	// node.status.runtimeHandlers before the node counts as drifted (0 disables the check).
	HandlerDeadline time.Duration

	objects   *store
	platforms platformCache
	expect    jobExpectations
	waiters   nodeWaiters
	memory    shimMemory
	labels    labelWrites
	writer    *nodeWriter
	buffers   sync.Map // Shim name -> *planBuffers
}

// jobExpectations remembers Jobs this manager created that its cache has not shown yet, so that a quick
// second reconcile counts them against the rollout budget instead of starting more, and other Shims'
// reconciles see their nodes occupied (see nodeops.go).
type jobExpectations struct {
	mu      sync.Mutex
	created map[jobKey]time.Time // when
}

// jobKey names the Job of one operation on one node at one spec hash.
type jobKey struct {
	shim, node string
	op         rollout.Operation
	hash       string
}

// expectationTimeout is how long a created Job is expected before the cache's view counts alone.
const expectationTimeout = time.Minute

// pending reports whether key was created recently and not seen since; seen clears it.
func (e *jobExpectations) pending(key jobKey, seen bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	at, ok := e.created[key]
	if ok && (seen || time.Since(at) > expectationTimeout) {
		delete(e.created, key)
		return false
	}
	return ok
}

// SetupWithManager registers the controller: Shims, their Jobs and RuntimeClasses, and Nodes (only
// changes that matter to a rollout).
func (r *ShimReconciler) SetupWithManager(mgr ctrl.Manager) error {
	objects, err := newStore(context.Background(), mgr.GetCache())
	if err != nil {
		return err
	}
	r.objects = objects
	r.writer = newNodeWriter()
	if err := mgr.Add(r.writer); err != nil {
		return fmt.Errorf("add the node writer: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("shim").
		For(&v1alpha1.Shim{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(r.shimsOfRecord)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.shimsOfRecord)).
		Watches(&v1alpha1.Shim{}, handler.EnqueueRequestsFromMapFunc(r.rivals)).
		Watches(&nodev1.RuntimeClass{}, handler.EnqueueRequestsFromMapFunc(r.shimsOfRuntimeClass)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allShims),
			builder.WithPredicates(nodeChanged())).
		WatchesRawSource(source.Channel(r.writer.wake, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

func (r *ShimReconciler) allShims(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.ShimList
	if err := r.Client.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list Shims for a node event")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
	}
	return out
}

// nodeChanged passes node events that can change a rollout: creation, deletion, and updates of labels,
// annotations, platform or runtime handlers (not heartbeats).
func nodeChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*cachedNode)
			n, ok2 := e.ObjectNew.(*cachedNode)
			if !ok1 || !ok2 {
				return true
			}
			return !maps.Equal(o.Labels, n.Labels) || !maps.Equal(o.Annotations, n.Annotations) ||
				o.Arch != n.Arch || o.OS != n.OS || !slices.Equal(o.Handlers, n.Handlers) ||
				o.RuntimeVersion != n.RuntimeVersion || o.BootID != n.BootID
		},
	}
}

// Reconcile moves one Shim's rollout one step: it reads nodes and Jobs from the cache, plans with
// rollout.Plan, applies the plan, and writes status only when it changed.
func (r *ShimReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var shim v1alpha1.Shim
	if err := r.Client.Get(ctx, req.NamespacedName, &shim); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(req.Name)
			r.waiters.set(req.Name, nil)
			r.memory.forget(req.Name)
			r.labels.forget(req.Name, nil)
			r.buffers.Delete(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get Shim %s: %w", req.Name, err)
	}
	if wait := r.memory.planWait(&shim, time.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	deleting := !shim.DeletionTimestamp.IsZero()
	if deleting && !controllerutil.ContainsFinalizer(&shim, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if !deleting && !controllerutil.ContainsFinalizer(&shim, v1alpha1.Finalizer) {
		patch := client.MergeFromWithOptions(shim.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&shim, v1alpha1.Finalizer)
		if err := r.Client.Patch(ctx, &shim, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to Shim %s: %w", shim.Name, err)
		}
	}

	// Writes of earlier plans that failed: reported now, and planned again below.
	errs := r.writer.takeErrors(shim.Name)
	hash := rollout.SpecHash(&shim)
	st := statusInput{Generation: shim.Generation, SpecHash: hash, Deleting: deleting,
		MaxFailures: rollout.MaxFailures(shim.Spec.Rollout.MaxFailures)}
	var requeue time.Duration

	if deleting {
		if err := r.deleteRuntimeClasses(ctx, &shim, ""); err != nil {
			errs = append(errs, err)
		}
	} else {
		c, err := r.findConflict(ctx, &shim)
		if err == nil && c == nil {
			if c, err = r.applyRuntimeClass(ctx, &shim); err != nil {
				st.RuntimeClassError = err.Error()
			} else if c == nil {
				st.RuntimeClassName = rollout.RuntimeClassName(&shim)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
		st.Conflict = c
	}
	var platforms []rollout.Platform // nil holds installs, not uninstalls
	reqs, reqErr := rollout.ParseRequirements(&shim)
	if !deleting && st.Conflict == nil {
		var err error
		if _, err = rollout.OptionFlags(rollout.RawOptions(&shim)); err != nil {
			st.InvalidSpec = err.Error()
		} else if reqErr != nil {
			st.InvalidSpec = reqErr.Error()
		} else if platforms, err = r.resolvePlatforms(ctx, &shim, hash); err != nil {
			st.SourceError = err.Error()
			log.Error(err, "resolve the source's platforms; installs wait", "shim", shim.Name)
			requeue = 30 * time.Second
		}
	}

	planStart := time.Now()
	view, outcomes, waitResult := r.observe(&shim, hash, reqs)
	errs = append(errs, r.forgetDeletedNodes(ctx, &shim)...)

	maxUnavailable, err := rollout.MaxUnavailable(shim.Spec.Rollout.MaxUnavailable, countSelected(view))
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("resolve the rollout budget of Shim %s: %w", shim.Name, err))
	}
	wave := r.memory.wave(&shim)
	plan := rollout.Plan(rollout.Input{
		SpecHash: hash, PreviousHash: shim.Status.SpecHash, Deleting: deleting, Platforms: platforms,
		MaxUnavailable: maxUnavailable, MaxFailures: st.MaxFailures, Wave: wave,
		Now: time.Now(), HandlerDeadline: r.HandlerDeadline, VerifyInterval: r.Jobs.VerifyIntervalOf(&shim), Nodes: view,
	})
	r.memory.planned(&shim, plan.Wave, planStart, time.Since(planStart)) // before any write can fail and take a success back
	written, applyErrs := r.apply(ctx, &shim, hash, plan, outcomes)
	errs = append(errs, applyErrs...)
	st.Plan, st.MaxUnavailable = plan, maxUnavailable
	var waiting []string
	for _, v := range view {
		if v.BusyWith != "" {
			waiting = append(waiting, v.Name)
		}
	}
	r.waiters.set(shim.Name, waiting)
	if plan.Waiting > 0 {
		requeue = minPositive(requeue, waitRequeue)
	}
	prev := meta.FindStatusCondition(shim.Status.Conditions, v1alpha1.ConditionDegraded)
	if plan.Paused && (prev == nil || prev.Reason != v1alpha1.ReasonRolloutPaused) {
		r.Recorder.Eventf(&shim, nil, corev1.EventTypeWarning, v1alpha1.ReasonRolloutPaused, "Pause",
			"rollout paused: %d nodes failed, more than maxFailures %d", plan.Counts.Failed, st.MaxFailures)
	}
	if c := st.Conflict; c != nil && (prev == nil || prev.Reason != c.reason) {
		r.Recorder.Eventf(&shim, nil, corev1.EventTypeWarning, c.reason, "Refuse", "%s", c.message)
	}

	if len(errs) > 0 {
		st.SpecHash = shim.Status.SpecHash // retry the hash change (clearing failed nodes) next time
	}
	newStatus := computeStatus(shim.Status, st)
	r.Metrics.setNodes(shim.Name, plan.Counts)
	if !equality.Semantic.DeepEqual(newStatus, shim.Status) {
		if wait := r.memory.statusWait(&shim, time.Now()); wait > 0 && progressOnly(shim.Status, newStatus) {
			requeue = minPositive(requeue, wait)
		} else {
			// An update (not a merge patch) writes every count, zeros included, and fails on a conflict
			// instead of mixing in a newer status. It waits for the plan's results, so that the status
			// never counts a node whose label does not show it yet.
			select {
			case <-written:
			case <-ctx.Done():
			}
			shim.Status = newStatus
			if err := r.Client.Status().Update(ctx, &shim); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("update status of Shim %s: %w", shim.Name, err))
			} else {
				r.memory.wroteStatus(&shim, time.Now())
			}
		}
	}

	if deleting && len(errs) == 0 && plan.InFlight == 0 && plan.Pending == 0 && !anyState(view, plan) {
		if r.writer.busy(shim.Name) {
			return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil // the last labels are being removed
		}
		patch := client.MergeFrom(shim.DeepCopy())
		controllerutil.RemoveFinalizer(&shim, v1alpha1.Finalizer)
		if err := r.Client.Patch(ctx, &shim, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("remove finalizer from Shim %s: %w", shim.Name, err)
		}
		log.Info("uninstalled from every node; Shim released", "shim", shim.Name)
		return ctrl.Result{}, nil
	}
	if err := kerrors.NewAggregate(errs); err != nil {
		return ctrl.Result{}, err
	}
	if waitResult {
		requeue = minPositive(requeue, 2*time.Second)
	}
	return ctrl.Result{RequeueAfter: minPositive(requeue, plan.RequeueAfter)}, nil
}

// observe turns the cached nodes and Jobs into the planner's view. It also returns the outcomes of
// finished Jobs whose result moves a node (by Job name, for Events and metrics), and whether some
// finished Job's result is not readable yet.
func (r *ShimReconciler) observe(shim *v1alpha1.Shim, hash string, reqs rollout.Requirements) ([]rollout.Node, map[string]Outcome, bool) {
	handler := rollout.Handler(shim)
	label, annotation := v1alpha1.NodeStateLabel(shim.Name), v1alpha1.NodeHashAnnotation(shim.Name)
	runtimeAnnotation := v1alpha1.NodeRuntimeAnnotation(shim.Name)
	outcomes := map[string]Outcome{}
	buf := r.planBuffers(shim.Name)
	jobs := r.jobsByNode(shim.Name, hash, buf.jobs)
	busy := r.busyNodes(shim.Name)
	expected, written := r.expect.mine(shim.Name), r.labels.of(shim.Name)
	nodes := r.objects.allNodes()
	view := buf.view[:0]
	defer func() { buf.view = view }()
	waitResult := false
	for _, n := range nodes {
		v := rollout.Node{
			Name:     n.Name,
			Selected: rollout.Selected(shim.Spec.NodeSelector, n.Labels, n.Annotations),
		}
		v.State, v.Hash, v.InstalledRuntime = r.labels.labelView(shim.Name, written, n,
			v1alpha1.NodeState(n.Labels[label]), n.Annotations[annotation], n.Annotations[runtimeAnnotation])
		nj, hasJobs := jobs[n.Name]
		if v.State == "" && v.Hash == "" && !v.Selected && !hasJobs {
			continue // nothing of ours there and nothing to do (fast path for large clusters)
		}
		v.Platform = rollout.Platform{OS: n.OS, Arch: n.Arch}
		v.HandlersReported = len(n.Handlers) > 0
		v.HandlerListed = slices.Contains(n.Handlers, handler)
		v.OtherActive = nj.otherActive
		if n.RuntimeVersion != "" {
			v.Unmet = reqs.Unmet(n.RuntimeVersion)
		}
		v.Runtime = rollout.RuntimeID(n.RuntimeVersion, n.BootID)
		var waitInstall, waitUninstall, waitVerify bool
		v.Install, waitInstall = r.jobState(jobKey{shim.Name, n.Name, rollout.Install, hash}, expected, nj.install, v.State, outcomes)
		v.Uninstall, waitUninstall = r.jobState(jobKey{shim.Name, n.Name, rollout.Uninstall, hash}, expected, nj.uninstall, v.State, outcomes)
		v.Verify, waitVerify = r.jobState(jobKey{shim.Name, n.Name, rollout.Verify, hash}, expected, nj.verify, v.State, outcomes)
		waitResult = waitResult || waitInstall || waitUninstall || waitVerify
		v.BusyWith = busy[n.Name]
		view = append(view, v)
	}
	return view, outcomes, waitResult
}

// nodeJobs are a Shim's Jobs on one node, as observe reads them.
type nodeJobs struct {
	// install, uninstall and verify are the Jobs at the current spec hash (nil: none cached).
	install, uninstall, verify *cachedJob
	// otherActive reports a Job at another spec hash that still runs.
	otherActive bool
}

// planBuffers are the buffers a Shim's reconciles reuse (they never run at the same time): at thousands
// of nodes, a new view and Job map per reconcile were most of the manager's garbage.
type planBuffers struct {
	view []rollout.Node
	jobs map[string]nodeJobs
}

// planBuffers returns the Shim's buffers.
func (r *ShimReconciler) planBuffers(shim string) *planBuffers {
	b, _ := r.buffers.LoadOrStore(shim, &planBuffers{jobs: map[string]nodeJobs{}})
	return b.(*planBuffers)
}

// jobsByNode sorts a Shim's cached Jobs by node into out (cleared first). It runs once per reconcile:
// an informer index by node kept a set per node, a few hundred bytes each, for the manager's whole life.
func (r *ShimReconciler) jobsByNode(shim, hash string, out map[string]nodeJobs) map[string]nodeJobs {
	clear(out)
	jobs := r.objects.shimJobs(shim)
	for _, j := range jobs {
		nj := out[j.Node]
		switch {
		case j.SpecHash == hash && j.Operation == rollout.Install:
			nj.install = j
		case j.SpecHash == hash && j.Operation == rollout.Uninstall:
			nj.uninstall = j
		case j.SpecHash == hash && j.Operation == rollout.Verify:
			nj.verify = j
		case !nj.otherActive:
			o, _ := jobOutcome(j, r.objects.jobPods(j.UID))
			nj.otherActive = o.Phase == rollout.JobActive
		}
		out[j.Node] = nj
	}
	return out
}

// jobState is the planner's view of the Job of key (job is the cached one, nil: none; expected holds
// the keys of the Shim's Jobs created recently, see jobExpectations). The installer's
// result is read only where it decides the node's next state: while the node is installing,
// uninstalling or failed, or the Job has not finished. Elsewhere the Job's own conditions say enough.
// waiting reports a finished Job whose result is not readable yet; the node is held meanwhile.
func (r *ShimReconciler) jobState(key jobKey, expected map[jobKey]bool, job *cachedJob,
	state v1alpha1.NodeState, outcomes map[string]Outcome) (j rollout.Job, waiting bool) {
	if expected[key] && r.expect.pending(key, job != nil) {
		return rollout.Job{Phase: rollout.JobActive}, false
	}
	if job != nil && job.DeletionTimestamp != nil && key.op == rollout.Verify {
		// Expired by its TTL, which deletes in the foreground: the next verify Job can take its name
		// only once it is gone.
		return rollout.Job{Phase: rollout.JobActive}, false
	}
	if job == nil || job.DeletionTimestamp != nil {
		return rollout.Job{}, false // a Job being deleted is gone for the plan (as in jobOutcome)
	}
	if o, finished := jobConditionOutcome(job); finished && key.op != rollout.Verify && state != v1alpha1.NodeInstalling &&
		state != v1alpha1.NodeUninstalling && state != v1alpha1.NodeFailed {
		return rollout.Job{Phase: o.Phase, Detail: o.Detail, Finished: o.Finished, Repair: job.Repair}, false
	}
	o, ok := jobOutcome(job, r.objects.jobPods(job.UID))
	if !ok {
		o.Phase = rollout.JobActive // hold the node until its result is readable
	}
	outcomes[job.Name] = o
	return rollout.Job{Phase: o.Phase, Detail: o.Detail, Finished: o.Finished, Busy: o.Busy, Repair: job.Repair}, !ok
}

// forgetDeletedNodes deletes the running Jobs of nodes that left the cluster, and forgets the labels
// written there.
func (r *ShimReconciler) forgetDeletedNodes(ctx context.Context, shim *v1alpha1.Shim) []error {
	r.labels.forget(shim.Name, func(node string) bool { return r.objects.node(node) == nil })
	var errs []error
	for _, j := range r.objects.shimJobs(shim.Name) {
		node := j.Node
		if j.DeletionTimestamp != nil || r.objects.node(node) != nil {
			continue
		}
		if _, finished := jobConditionOutcome(j); finished {
			continue // expires by its TTL
		}
		ctrl.LoggerFrom(ctx).Info("node left the cluster; deleting its Job", "node", node, "job", j.Name)
		del := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: j.Name, Namespace: j.Namespace}} // j is the cache's
		if err := r.Client.Delete(ctx, del, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Job %s of deleted node %s: %w", j.Name, node, err))
		}
	}
	return errs
}

// writeParallelism is how many node writes run at once (see nodeWriter). Different nodes do not wait
// for each other, so a wave of a large rollout costs a few round trips instead of hundreds; with 16 the
// manager created Jobs more slowly than the API server took them at 5,000 nodes.
const writeParallelism = 64

// nodeWork is one node's part of a plan, in the order it must happen.
type nodeWork struct {
	node     string
	changes  []rollout.Change
	restarts []rollout.Restart
	// jobs are the Jobs of the node's starts, claimed (see claimNode) and built.
	jobs []*batchv1.Job
	keys []jobKey
	// tokens are the labelWrites tokens of changes.
	tokens []uint64
}

// apply queues a plan's writes to the nodeWriter (see nodewriter.go) and returns without waiting for
// them; the returned channel closes once the plan's results are written. Before it returns, every
// label change counts in labelWrites and every Job in jobExpectations, so the next plan sees them.
// The results (labels of nodes that finished, with Events and metrics, and the deletion of finished
// Jobs to run again) go first; a start's Job is created with them unless the node has a result in this
// plan too; the starts' labels (installing, uninstalling) follow once the results are written, so that no
// observer ever sees more nodes in flight than the results allow. A node whose start another Shim's
// operation holds (claimNode) waits for a later plan. Errors of the writes are reported by the next
// reconcile (nodeWriter.takeErrors); apply returns only those of building Jobs.
func (r *ShimReconciler) apply(ctx context.Context, shim *v1alpha1.Shim, hash string, plan rollout.Output,
	outcomes map[string]Outcome) (<-chan struct{}, []error) {
	starting := map[string]bool{}
	for _, st := range plan.Starts {
		starting[st.Node] = true
	}
	results, starts := map[string]*nodeWork{}, map[string]*nodeWork{}
	var resultOrder, startOrder []*nodeWork
	get := func(m map[string]*nodeWork, order *[]*nodeWork, node string) *nodeWork {
		w, ok := m[node]
		if !ok {
			w = &nodeWork{node: node}
			m[node] = w
			*order = append(*order, w)
		}
		return w
	}
	for _, c := range plan.Changes {
		if starting[c.Node] && (c.State == v1alpha1.NodeInstalling || c.State == v1alpha1.NodeUninstalling) {
			w := get(starts, &startOrder, c.Node)
			w.changes = append(w.changes, c)
		} else {
			w := get(results, &resultOrder, c.Node)
			w.changes = append(w.changes, c)
		}
	}
	for _, rs := range plan.Restarts {
		w := get(results, &resultOrder, rs.Node)
		w.restarts = append(w.restarts, rs)
	}
	var errs []error
	for _, st := range plan.Starts {
		errs = r.claimStart(ctx, shim, hash, st, get(starts, &startOrder, st.Node), errs)
	}

	// The writes run after this reconcile has returned: they keep their own copy of the Shim.
	shim = shim.DeepCopy()
	log := ctrl.LoggerFrom(ctx)
	var resultDone []chan struct{}
	failed := &failedNodes{}
	startsBefore := r.writer.lastBarrier(shim.Name, startsWritten)
	for _, w := range resultOrder {
		w.begin(&r.labels, shim.Name)
		var after []chan struct{}
		if startsBefore != nil && slices.ContainsFunc(w.changes, func(c rollout.Change) bool { return c.State == v1alpha1.NodeFailed }) {
			// A failure drops the wave size: the starts planned before it go first.
			after = append(after, startsBefore)
		}
		resultDone = append(resultDone, r.writer.enqueue(shim.Name, w.node, after, func(ctx context.Context) error {
			err := r.writeResults(ctx, shim, hash, w, outcomes)
			if err != nil {
				failed.add(w.node)
			}
			return err
		}))
	}
	// Jobs of nodes without a result in this plan are created at once.
	for _, w := range startOrder {
		if _, ok := results[w.node]; ok || len(w.jobs) == 0 {
			continue
		}
		jobs, keys := w.jobs, w.keys
		w.jobs, w.keys = nil, nil
		resultDone = append(resultDone, r.writer.enqueue(shim.Name, w.node, nil, func(ctx context.Context) error {
			err := r.createJobs(ctx, w.node, jobs, keys)
			if err != nil {
				failed.add(w.node) // no installing label without its Job
			}
			return err
		}))
	}
	written := r.writer.barrier(shim.Name, resultsWritten, resultDone)
	var startDone []chan struct{}
	for _, w := range startOrder {
		if len(w.changes) == 0 && len(w.jobs) == 0 {
			continue
		}
		w.begin(&r.labels, shim.Name)
		startDone = append(startDone, r.writer.enqueue(shim.Name, w.node, []chan struct{}{written}, func(ctx context.Context) error {
			if failed.has(w.node) {
				// Its result was not written: the start waits for the next plan.
				r.labels.forgetTokens(shim.Name, w.node, w.tokens)
				r.releaseJobs(w.keys)
				return nil
			}
			labelled := make(chan error, 1)
			go func() { labelled <- r.writeChanges(ctx, shim.Name, w) }()
			return errors.Join(r.createJobs(ctx, w.node, w.jobs, w.keys), <-labelled)
		}))
	}
	if len(startDone) > 0 {
		r.writer.barrier(shim.Name, startsWritten, startDone)
	}
	log.V(1).Info("node writes queued", "results", len(resultOrder), "starts", len(startOrder))
	return written, errs
}

// claimStart claims the node of a start for the Shim (see claimNode) and builds its Job into w. A node
// that another Shim's operation holds is left out of the plan's writes: its Job waits.
func (r *ShimReconciler) claimStart(ctx context.Context, shim *v1alpha1.Shim, hash string, st rollout.Start,
	w *nodeWork, errs []error) []error {
	cached := r.objects.node(st.Node)
	if cached == nil {
		w.changes = nil // the node has left the cluster
		return errs
	}
	key := jobKey{shim.Name, st.Node, st.Op, hash}
	if other := r.claimNode(key); other != "" {
		ctrl.LoggerFrom(ctx).V(1).Info("node busy with another Shim's operation; the Job waits", "node", st.Node, "shim", other)
		w.changes = nil
		return errs
	}
	job, err := BuildJob(r.Jobs, shim, cached.node(), st.Op, hash)
	if err != nil {
		r.expect.forget(key)
		w.changes = nil
		return append(errs, err)
	}
	if st.Repair {
		job.Labels[LabelRepair] = "true"
	}
	w.jobs, w.keys = append(w.jobs, job), append(w.keys, key)
	return errs
}

// failedNodes are the nodes whose result writes failed in one plan.
type failedNodes struct {
	mu    sync.Mutex
	nodes map[string]bool
}

func (f *failedNodes) add(node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		f.nodes = map[string]bool{}
	}
	f.nodes[node] = true
}

func (f *failedNodes) has(node string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[node]
}

// begin records the work's label changes as written (labelWrites) before they are queued.
func (w *nodeWork) begin(labels *labelWrites, shim string) {
	w.tokens = make([]uint64, len(w.changes))
	for i, c := range w.changes {
		w.tokens[i] = labels.begin(shim, c)
	}
}

// writeResults writes a node's results: its label changes with their Events and metrics, then the
// deletion of finished Jobs that must run again. It stops at the first error.
func (r *ShimReconciler) writeResults(ctx context.Context, shim *v1alpha1.Shim, hash string, w *nodeWork,
	outcomes map[string]Outcome) error {
	var related runtime.Object // an Event's related object: none, not a nil *Node, when the node is gone
	if cached := r.objects.node(w.node); cached != nil {
		related = cached.node()
	}
	for i, c := range w.changes {
		if err := r.patchNode(ctx, shim.Name, c, w.tokens[i]); err != nil {
			r.labels.forgetTokens(shim.Name, w.node, w.tokens[i+1:])
			if rollout.Success(c) {
				// The result is planned again, and its success counted again: take this count back.
				r.memory.uncount(shim)
			}
			return err
		}
		if c.Event == nil {
			continue
		}
		typ := corev1.EventTypeNormal
		if c.Event.Warning {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(shim, related, typ, c.Event.Reason, "Reconcile", "%s", c.Event.Message)
		r.observeResult(shim, hash, c, outcomes)
	}
	for _, rs := range w.restarts {
		name := rollout.JobName(shim.Name, rs.Node, rs.Op, hash)
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Jobs.Namespace}}
		if err := r.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete finished Job %s before re-running %s on node %s: %w", name, rs.Op, rs.Node, err)
		}
	}
	return nil
}

// writeChanges writes a node's label changes in order and stops at the first error.
func (r *ShimReconciler) writeChanges(ctx context.Context, shim string, w *nodeWork) error {
	for i, c := range w.changes {
		if err := r.patchNode(ctx, shim, c, w.tokens[i]); err != nil {
			r.labels.forgetTokens(shim, w.node, w.tokens[i+1:])
			return err
		}
	}
	return nil
}

// createJobs creates a node's claimed Jobs. A Job that exists already is fine (its name is
// deterministic); one that could not be created is no longer expected, so the next plan starts it again.
func (r *ShimReconciler) createJobs(ctx context.Context, node string, jobs []*batchv1.Job, keys []jobKey) error {
	for i, job := range jobs {
		if err := r.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			r.releaseJobs(keys[i:])
			return fmt.Errorf("create %s Job %s for node %s: %w", job.Labels[LabelOperation], job.Name, node, err)
		}
	}
	return nil
}

// releaseJobs drops the expectations (and node claims) of Jobs that were not created.
func (r *ShimReconciler) releaseJobs(keys []jobKey) {
	for _, k := range keys {
		r.expect.forget(k)
	}
}

// observeResult records metrics for a node result.
func (r *ShimReconciler) observeResult(shim *v1alpha1.Shim, hash string, c rollout.Change, outcomes map[string]Outcome) {
	var op rollout.Operation
	result := "success"
	switch c.Event.Reason {
	case v1alpha1.ReasonInstalled:
		op = rollout.Install
	case v1alpha1.ReasonInstallFailed:
		op, result = rollout.Install, "failure"
	case v1alpha1.ReasonUnsupportedHost:
		op, result = rollout.Install, "unsupported"
	case v1alpha1.ReasonUninstalled:
		op = rollout.Uninstall
	case v1alpha1.ReasonUninstallFailed:
		op, result = rollout.Uninstall, "failure"
	case v1alpha1.ReasonNodeDrifted:
		r.Metrics.Drifts.WithLabelValues(shim.Name, string(c.Event.Cause)).Inc()
		return
	default:
		return
	}
	r.Metrics.Operations.WithLabelValues(shim.Name, string(op), result).Inc()
	if o, ok := outcomes[rollout.JobName(shim.Name, c.Node, op, hash)]; ok && o.Duration > 0 {
		r.Metrics.Duration.WithLabelValues(shim.Name, string(op)).Observe(o.Duration.Seconds())
	}
}

// patchNode sets or removes a node's state label and its hash and runtime annotations with one merge
// patch that names only those keys, and tells labelWrites how the write of token ended.
func (r *ShimReconciler) patchNode(ctx context.Context, shim string, c rollout.Change, token uint64) error {
	value := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{v1alpha1.NodeStateLabel(shim): value(string(c.State))},
		"annotations": map[string]any{v1alpha1.NodeHashAnnotation(shim): value(c.Hash), v1alpha1.NodeRuntimeAnnotation(shim): value(c.Runtime)},
	}})
	if err != nil {
		r.labels.done(shim, c.Node, token, "", err)
		return fmt.Errorf("encode label patch for node %s: %w", c.Node, err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.Node}}
	err = r.Client.Patch(ctx, node, client.RawPatch(types.MergePatchType, body))
	r.labels.done(shim, c.Node, token, node.ResourceVersion, err)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("label node %s %s=%q: %w", c.Node, v1alpha1.NodeStateLabel(shim), c.State, err)
	}
	return nil
}

// applyRuntimeClass creates the Shim's RuntimeClass, or server-side applies it when the one the Shim
// controls differs, and deletes RuntimeClasses the Shim owned under another name. A RuntimeClass of the
// name that the Shim does not control (created meanwhile) is a conflict: it is left alone.
func (r *ShimReconciler) applyRuntimeClass(ctx context.Context, shim *v1alpha1.Shim) (*conflict, error) {
	desired := desiredRuntimeClass(shim)
	key := client.ObjectKey{Name: desired.Name}
	var current nodev1.RuntimeClass
	err := r.Client.Get(ctx, key, &current)
	if apierrors.IsNotFound(err) {
		// Create, never apply: an apply would adopt a RuntimeClass someone else created meanwhile.
		if err = r.Client.Create(ctx, desired.DeepCopy(), client.FieldOwner(FieldOwner)); err == nil {
			return nil, r.deleteRuntimeClasses(ctx, shim, desired.Name)
		}
		if apierrors.IsAlreadyExists(err) {
			err = r.APIReader.Get(ctx, key, &current)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apply RuntimeClass %s for Shim %s: %w", desired.Name, shim.Name, err)
	}
	if c := runtimeClassConflict(&current, shim); c != nil {
		return c, nil
	}
	if !runtimeClassUpToDate(&current, desired) {
		if err := r.Client.Apply(ctx, runtimeClassApply(desired), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("apply RuntimeClass %s for Shim %s: %w", desired.Name, shim.Name, err)
		}
	}
	return nil, r.deleteRuntimeClasses(ctx, shim, desired.Name)
}

// deleteRuntimeClasses deletes the RuntimeClasses the Shim owns, except keep.
func (r *ShimReconciler) deleteRuntimeClasses(ctx context.Context, shim *v1alpha1.Shim, keep string) error {
	var list nodev1.RuntimeClassList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{LabelManagedBy: ManagedByValue, LabelShim: shim.Name}); err != nil {
		return fmt.Errorf("list RuntimeClasses of Shim %s: %w", shim.Name, err)
	}
	var errs []error
	for i := range list.Items {
		rc := &list.Items[i]
		if rc.Name == keep || rc.DeletionTimestamp != nil || !metav1.IsControlledBy(rc, shim) {
			continue
		}
		if err := r.Client.Delete(ctx, rc); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete RuntimeClass %s of Shim %s: %w", rc.Name, shim.Name, err))
		}
	}
	return errors.Join(errs...)
}

// resolvePlatforms returns the platforms the Shim's source offers. OCI indexes are read once per spec hash.
func (r *ShimReconciler) resolvePlatforms(ctx context.Context, shim *v1alpha1.Shim, hash string) ([]rollout.Platform, error) {
	src := shim.Spec.Source
	switch {
	case src.Builtin != "":
		return rollout.BuiltinPlatforms, nil
	case src.HTTP != nil:
		return rollout.HTTPPlatforms(src.HTTP), nil
	case src.OCI == nil:
		return nil, errors.New("the Shim has no source")
	}
	if p, ok := r.platforms.get(hash); ok {
		return p, nil
	}
	var dockerConfig []byte
	if name := src.OCI.PullSecret; name != "" {
		var secret corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Jobs.Namespace, Name: name}, &secret); err != nil {
			return nil, fmt.Errorf("read pull secret %s/%s: %w", r.Jobs.Namespace, name, err)
		}
		dockerConfig = secret.Data[corev1.DockerConfigJsonKey]
	}
	p, err := r.Platforms.Platforms(ctx, src.OCI.Image, dockerConfig)
	if err != nil {
		return nil, fmt.Errorf("list the platforms of %s: %w", src.OCI.Image, err)
	}
	if p == nil {
		p = []rollout.Platform{}
	}
	r.platforms.put(hash, p)
	return p, nil
}

func countSelected(view []rollout.Node) int {
	n := 0
	for _, v := range view {
		if v.Selected {
			n++
		}
	}
	return n
}

// anyState reports whether any node still carries the Shim's label or hash after the plan.
func anyState(view []rollout.Node, plan rollout.Output) bool {
	final := map[string]bool{}
	for _, v := range view {
		final[v.Name] = v.State != "" || v.Hash != ""
	}
	for _, c := range plan.Changes {
		final[c.Node] = c.State != "" || c.Hash != ""
	}
	for _, left := range final {
		if left {
			return true
		}
	}
	return false
}

func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	default:
		return min(a, b)
	}
}
