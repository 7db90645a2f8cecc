package controller

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/kwoktest"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

// One control plane (envtest + kube-controller-manager + KWOK) serves every integration test of the
// package. The tests run one after another: each starts its own manager, and managers watch every Shim.
var (
	cluster  *kwoktest.Cluster
	setupErr error
	k8s      client.WithWatch
)

func TestMain(m *testing.M) {
	flag.Parse()
	var logDir string
	if !testing.Short() && kwoktest.Available() == nil {
		logDir, setupErr = os.MkdirTemp("/tmp", "wkctl")
		if setupErr == nil {
			setupErr = managerLog(logDir)
		}
		if setupErr == nil {
			cluster, setupErr = kwoktest.Start(kwoktest.Options{
				CRDPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")},
				LogDir:   logDir,
			})
		}
		if setupErr == nil {
			scheme, _ := NewScheme()
			k8s, setupErr = client.NewWithWatch(cluster.Config, client.Options{Scheme: scheme})
		}
		if setupErr == nil {
			setupErr = applyPolicies()
		}
	}
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if code == 0 && logDir != "" {
		os.RemoveAll(logDir)
	} else if logDir != "" {
		fmt.Fprintf(os.Stderr, "control plane logs kept in %s\n", logDir)
	}
	os.Exit(code)
}

// policyDir holds the admission policies the chart installs beside the CRD.
var policyDir = filepath.Join("..", "..", "config", "policy")

// applyPolicies creates the admission policies of policyDir and waits until the API server enforces them.
func applyPolicies() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := readManifests(policyDir)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return waitPolicyEnforced(ctx, true)
}

// waitPolicyEnforced waits until a dry-run create of a Shim with an option beyond int64 is refused
// (enforced) or accepted (!enforced): the API server loads policies and bindings asynchronously.
func waitPolicyEnforced(ctx context.Context, enforced bool) error {
	probe := validShim("policy-probe", options(map[string]string{"Big": "18446744073709551616"}))
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		err := k8s.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return (err != nil) == enforced, nil
	})
}

// readManifests decodes every YAML document of the directory's .yaml files.
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var o unstructured.Unstructured
			if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("decode %s: %w", f, err)
			}
			if len(o.Object) > 0 {
				out = append(out, &o)
			}
		}
	}
	return out, nil
}

// managerLog sends the managers' logs to LOGDIR/manager.log.
func managerLog(dir string) error {
	f, err := os.Create(filepath.Join(dir, "manager.log"))
	if err != nil {
		return err
	}
	ctrl.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return nil
}

// requireCluster skips under -short and fails when the control plane could not start.
func requireCluster(t *testing.T) {
	t.Helper()
	testenv.EnvtestAssets(t)
	testenv.KubeBinary(t, "kube-controller-manager")
	testenv.Path(t, testenv.EnvKwokDir, "bin", "kwok")
	if cluster == nil || setupErr != nil {
		t.Fatalf("control plane did not start: %v", setupErr)
	}
}

// harness is one test's manager, namespace and nodes.
type harness struct {
	t       *testing.T
	ctx     context.Context
	ns      string
	nodes   []string
	opts    Options
	stopMgr func()
	// registry holds the metrics of the manager started last.
	registry *prometheus.Registry
}

// newHarness creates a namespace for the test's Jobs and registers cleanup of everything the test makes.
func newHarness(t *testing.T) *harness {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	ns := "wk-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(ns) > 50 {
		ns = ns[:50]
	}
	ns = strings.Trim(ns, "-")
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	h := &harness{t: t, ctx: ctx, ns: ns}
	jobs := DefaultJobConfig()
	jobs.Namespace, jobs.Image, jobs.BackoffLimit, jobs.TTLSecondsAfterFinished = ns, "wasmkube/node-installer:test", 0, 300
	h.opts = Options{Jobs: jobs, MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true}
	t.Cleanup(h.cleanup)
	return h
}

// start runs a manager until stop or the end of the test.
func (h *harness) start() {
	h.t.Helper()
	o := h.opts
	h.registry = prometheus.NewRegistry()
	o.Registry = h.registry
	mgr, err := NewManager(cluster.Config, o)
	if err != nil {
		h.t.Fatalf("new manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h.stopMgr = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager: %v", err)
		}
		h.stopMgr = nil
	}
}

func (h *harness) stop() {
	if h.stopMgr != nil {
		h.stopMgr()
	}
}

// cleanup deletes the test's Shims (while a manager runs, so finalizers are honoured; a Shim whose
// uninstall cannot succeed, e.g. on a fail-* node, is released by hand after a while), then stops the
// manager and deletes the nodes.
func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var shims v1alpha1.ShimList
	if err := k8s.List(ctx, &shims); err != nil {
		h.t.Errorf("cleanup: list Shims: %v", err)
	}
	if len(shims.Items) > 0 && h.stopMgr == nil {
		h.start()
	}
	for i := range shims.Items {
		_ = k8s.Delete(ctx, &shims.Items[i])
	}
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		var left v1alpha1.ShimList
		err := k8s.List(ctx, &left)
		return err == nil && len(left.Items) == 0, nil
	})
	h.stop()
	var left v1alpha1.ShimList
	if err := k8s.List(ctx, &left); err == nil {
		for i := range left.Items {
			patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
			_ = k8s.Patch(ctx, &left.Items[i], patch)
		}
	}
	if err := kwoktest.DeleteNodes(ctx, k8s, h.nodes...); err != nil {
		h.t.Errorf("cleanup: %v", err)
	}
}

// addNodes creates KWOK nodes named prefix-0..n-1 (or exactly names) with an architecture, labels and
// annotations.
func (h *harness) addNodes(arch string, labels, annotations map[string]string, names ...string) {
	h.t.Helper()
	var nodes []*corev1.Node
	for _, n := range names {
		nodes = append(nodes, kwoktest.Node(n, arch, labels, annotations))
		h.nodes = append(h.nodes, n)
	}
	if err := kwoktest.CreateNodes(h.ctx, k8s, nodes...); err != nil {
		h.t.Fatal(err)
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// create creates a Shim.
func (h *harness) create(s *v1alpha1.Shim) {
	h.t.Helper()
	if err := k8s.Create(h.ctx, s); err != nil {
		h.t.Fatalf("create Shim %s: %v", s.Name, err)
	}
}

// update applies mut to the latest version of a Shim.
func (h *harness) update(name string, mut func(*v1alpha1.Shim)) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var s v1alpha1.Shim
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &s); err != nil {
			return false, err
		}
		mut(&s)
		err := k8s.Update(ctx, &s)
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		h.t.Fatalf("update Shim %s: %v", name, err)
	}
}

// eventually polls cond (reading through the direct client, not a cache) until it holds.
func (h *harness) eventually(what string, timeout time.Duration, cond func(ctx context.Context) (bool, string, error)) {
	h.t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(h.ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, detail, err := cond(ctx)
		last = detail
		return ok, err
	})
	if err != nil {
		h.t.Fatalf("%s: %v (last: %s)", what, err, last)
	}
}

// nodeStates returns the Shim's label on each of the test's nodes ("" when absent) and the hash annotations.
func (h *harness) nodeStates(ctx context.Context, shim string) (map[string]string, map[string]string, error) {
	states, hashes := map[string]string{}, map[string]string{}
	for _, n := range h.nodes {
		var node corev1.Node
		if err := k8s.Get(ctx, client.ObjectKey{Name: n}, &node); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, nil, err
		}
		states[n] = node.Labels[v1alpha1.NodeStateLabel(shim)]
		hashes[n] = node.Annotations[v1alpha1.NodeHashAnnotation(shim)]
	}
	return states, hashes, nil
}

// waitStates waits until the test's nodes carry exactly the wanted states for a Shim (nodes not in want
// must have no label).
func (h *harness) waitStates(shim string, want map[string]string, timeout time.Duration) map[string]string {
	h.t.Helper()
	var hashes map[string]string
	h.eventually(fmt.Sprintf("node states of Shim %s", shim), timeout, func(ctx context.Context) (bool, string, error) {
		states, hs, err := h.nodeStates(ctx, shim)
		if err != nil {
			return false, "", err
		}
		hashes = hs
		for n, s := range states {
			if want[n] != s {
				return false, fmt.Sprintf("%v", states), nil
			}
		}
		return true, "", nil
	})
	return hashes
}

// shimStatus waits for the Shim's status to satisfy cond.
func (h *harness) waitShim(name string, timeout time.Duration, cond func(s *v1alpha1.Shim) bool) *v1alpha1.Shim {
	h.t.Helper()
	var s v1alpha1.Shim
	h.eventually("status of Shim "+name, timeout, func(ctx context.Context) (bool, string, error) {
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &s); err != nil {
			return false, "", err
		}
		return cond(&s), fmt.Sprintf("generation %d status %+v", s.Generation, s.Status), nil
	})
	return &s
}

func condition(s *v1alpha1.Shim, typ string) *metav1.Condition {
	return meta.FindStatusCondition(s.Status.Conditions, typ)
}

// readyAt reports whether the status describes the current generation with the given counts.
func settled(s *v1alpha1.Shim) bool {
	p := condition(s, v1alpha1.ConditionProgressing)
	return s.Status.ObservedGeneration == s.Generation && p != nil && p.Status == metav1.ConditionFalse
}

// tracker watches the test's nodes and Jobs from the start of a scenario: it records the most nodes ever
// labelled installing at once, the order nodes became ready, and every Job created.
type tracker struct {
	mu            sync.Mutex
	shim          string
	state         map[string]string
	maxInstalling int
	// installingBeforeFirstReady is the most nodes installing at once before any node was ready.
	installingBeforeFirstReady int
	anyReady                   bool
	jobsAdded                  map[string]int // node -> install Jobs created
	// readySinceFailure counts the nodes that turned ready since the last one turned failed.
	readySinceFailure int
	// slowStart lists the moments a node turned installing or uninstalling while more nodes were in
	// flight than slow start allows: one more than the nodes that turned ready since the last failure.
	slowStart []string
	stop      []func()
}

func (h *harness) track(shim string) *tracker {
	h.t.Helper()
	tr := &tracker{shim: shim, state: map[string]string{}, jobsAdded: map[string]int{}}
	nw, err := k8s.Watch(h.ctx, &corev1.NodeList{})
	if err != nil {
		h.t.Fatalf("watch nodes: %v", err)
	}
	// Jobs: only those created from now on (a watch without a resourceVersion replays existing ones).
	var existing batchv1.JobList
	if err := k8s.List(h.ctx, &existing, client.InNamespace(h.ns)); err != nil {
		h.t.Fatalf("list Jobs: %v", err)
	}
	jw, err := k8s.Watch(h.ctx, &batchv1.JobList{}, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: shim},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: existing.ResourceVersion}})
	if err != nil {
		h.t.Fatalf("watch Jobs: %v", err)
	}
	tr.stop = []func(){nw.Stop, jw.Stop}
	go func() {
		for ev := range nw.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			tr.mu.Lock()
			old, now := tr.state[n.Name], n.Labels[v1alpha1.NodeStateLabel(shim)]
			if ev.Type == watch.Deleted {
				delete(tr.state, n.Name)
			} else {
				tr.state[n.Name] = now
			}
			installing := 0
			for _, s := range tr.state {
				switch s {
				case string(v1alpha1.NodeInstalling), string(v1alpha1.NodeUninstalling):
					installing++
				case string(v1alpha1.NodeReady):
					tr.anyReady = true
				}
			}
			tr.maxInstalling = max(tr.maxInstalling, installing)
			switch {
			case now == old || ev.Type == watch.Deleted:
			case now == string(v1alpha1.NodeReady):
				tr.readySinceFailure++
			case now == string(v1alpha1.NodeFailed):
				tr.readySinceFailure = 0
			case (now == string(v1alpha1.NodeInstalling) || now == string(v1alpha1.NodeUninstalling)) &&
				installing > 1+tr.readySinceFailure:
				tr.slowStart = append(tr.slowStart, fmt.Sprintf("%s turned %s: %d nodes in flight, %d ready since the last failure",
					n.Name, now, installing, tr.readySinceFailure))
			}
			if !tr.anyReady {
				tr.installingBeforeFirstReady = max(tr.installingBeforeFirstReady, installing)
			}
			tr.mu.Unlock()
		}
	}()
	go func() {
		for ev := range jw.ResultChan() {
			j, ok := ev.Object.(*batchv1.Job)
			if !ok || ev.Type != watch.Added || j.Labels[LabelOperation] != "install" {
				continue
			}
			tr.mu.Lock()
			tr.jobsAdded[j.Spec.Template.Spec.NodeName]++
			tr.mu.Unlock()
		}
	}()
	h.t.Cleanup(tr.close)
	return tr
}

func (tr *tracker) close() {
	for _, s := range tr.stop {
		s()
	}
}

// slowStartViolations returns the moments more nodes were in flight than slow start allows.
func (tr *tracker) slowStartViolations() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.slowStart)
}

func (tr *tracker) snapshot() (maxInstalling, beforeReady int, jobs map[string]int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	jobs = map[string]int{}
	for k, v := range tr.jobsAdded {
		jobs[k] = v
	}
	return tr.maxInstalling, tr.installingBeforeFirstReady, jobs
}

// trackWaves watches a Shim's status.rollout.waveSize; the function it returns gives the values seen,
// each once per change.
func (h *harness) trackWaves(shim string) func() []int {
	h.t.Helper()
	w, err := k8s.Watch(h.ctx, &v1alpha1.ShimList{})
	if err != nil {
		h.t.Fatalf("watch Shims: %v", err)
	}
	h.t.Cleanup(w.Stop)
	var mu sync.Mutex
	var seen []int
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*v1alpha1.Shim)
			if !ok || s.Name != shim {
				continue
			}
			mu.Lock()
			if size := int(s.Status.Rollout.WaveSize); size > 0 && (len(seen) == 0 || seen[len(seen)-1] != size) {
				seen = append(seen, size)
			}
			mu.Unlock()
		}
	}()
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// events returns the messages of the Events about a Shim with a reason, once there are want of them or
// after 30 s.
func (h *harness) events(shim, reason string, want int) []string {
	h.t.Helper()
	// The manager writes Events asynchronously (see eventWriter): one may land a moment after the node
	// state it reports.
	var out []string
	err := wait.PollUntilContextTimeout(h.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list); err != nil {
			return false, err
		}
		out = out[:0]
		for _, e := range list.Items {
			if e.Regarding.Kind == "Shim" && e.Regarding.Name == shim && e.Reason == reason {
				out = append(out, e.Note)
			}
		}
		return len(out) >= want, nil
	})
	if err != nil && !wait.Interrupted(err) {
		h.t.Fatalf("list events: %v", err)
	}
	return out
}
