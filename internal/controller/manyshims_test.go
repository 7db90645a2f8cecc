package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// nodeOps records, from the start of a test, when each installer Job ran: from its creation until its
// pod ended or the Job finished, whichever came first (the installer process has exited then). Times
// are resource versions, which etcd assigns from one increasing counter, so the Jobs' and pods' watch
// streams can be merged afterwards.
type nodeOps struct {
	mu    sync.Mutex
	start map[string]uint64 // Job -> resource version of its creation
	end   map[string]uint64 // Job -> first resource version at which it or its pod had ended
	node  map[string]string // Job -> node
	shim  map[string]string // Job -> Shim
}

func (h *harness) watchNodeOps() *nodeOps {
	h.t.Helper()
	ops := &nodeOps{start: map[string]uint64{}, end: map[string]uint64{}, node: map[string]string{}, shim: map[string]string{}}
	var jobs batchv1.JobList
	if err := k8s.List(h.ctx, &jobs, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	jw, err := k8s.Watch(h.ctx, &batchv1.JobList{}, client.InNamespace(h.ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: jobs.ResourceVersion}})
	if err != nil {
		h.t.Fatal(err)
	}
	var pods corev1.PodList
	if err := k8s.List(h.ctx, &pods, client.InNamespace(h.ns)); err != nil {
		h.t.Fatal(err)
	}
	pw, err := k8s.Watch(h.ctx, &corev1.PodList{}, client.InNamespace(h.ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: pods.ResourceVersion}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(jw.Stop)
	h.t.Cleanup(pw.Stop)
	ended := func(job string, rv string) {
		n, _ := strconv.ParseUint(rv, 10, 64)
		if e, ok := ops.end[job]; !ok || n < e {
			ops.end[job] = n
		}
	}
	go func() {
		for ev := range jw.ResultChan() {
			j, ok := ev.Object.(*batchv1.Job)
			if !ok {
				continue
			}
			ops.mu.Lock()
			if ev.Type == watch.Added {
				ops.start[j.Name], _ = strconv.ParseUint(j.ResourceVersion, 10, 64)
				ops.node[j.Name], ops.shim[j.Name] = j.Spec.Template.Spec.NodeName, j.Labels[LabelShim]
			}
			if ev.Type == watch.Deleted || slices.ContainsFunc(j.Status.Conditions, func(c batchv1.JobCondition) bool {
				return (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue
			}) {
				ended(j.Name, j.ResourceVersion)
			}
			ops.mu.Unlock()
		}
	}()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || (p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed) {
				continue
			}
			ops.mu.Lock()
			ended(p.Labels[batchv1.JobNameLabel], p.ResourceVersion)
			ops.mu.Unlock()
		}
	}()
	return ops
}

// check returns the Jobs that started on a node before another Job there had ended, and the most Jobs
// of each Shim that ran at once.
func (o *nodeOps) check() (overlaps []string, maxJobs map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := func(j string) uint64 {
		if e, ok := o.end[j]; ok {
			return e
		}
		return math.MaxUint64
	}
	var jobs []string
	for j := range o.start {
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b string) int { return cmp.Compare(o.start[a], o.start[b]) })
	maxJobs = map[string]int{}
	for i, j := range jobs {
		same := 1
		for _, k := range jobs[:i] {
			if end(k) <= o.start[j] {
				continue
			}
			if o.node[k] == o.node[j] {
				overlaps = append(overlaps, fmt.Sprintf("%s started on %s while %s ran", j, o.node[j], k))
			}
			if o.shim[k] == o.shim[j] {
				same++
			}
		}
		maxJobs[o.shim[j]] = max(maxJobs[o.shim[j]], same)
	}
	return overlaps, maxJobs
}

// TestManyShimsOneNodeAtATime: three Shims roll out to the same nodes at once and are then
// deleted. At no moment do two Jobs run on one node; a node that waits for another Shim's Job is
// pending, never failed; and each Shim's budget counts only its own nodes (the Shim with the budget of
// all its nodes runs several Jobs at once while the others' Jobs run elsewhere).
func TestManyShimsOneNodeAtATime(t *testing.T) {
	h := newHarness(t)
	nodes := names("mso", 4)
	h.addNodes("amd64", nil, enabled(optIn), nodes...)
	h.start()
	ops := h.watchNodeOps()
	var failedSeen []string
	var mu sync.Mutex
	shims := []string{"mso-a", "mso-b", "mso-c"}
	nw, err := k8s.Watch(h.ctx, &corev1.NodeList{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Stop)
	go func() {
		for ev := range nw.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok {
				continue
			}
			for _, s := range shims {
				if n.Labels[v1alpha1.NodeStateLabel(s)] == string(v1alpha1.NodeFailed) {
					mu.Lock()
					failedSeen = append(failedSeen, s+" on "+n.Name)
					mu.Unlock()
				}
			}
		}
	}()

	h.create(validShim("mso-a", maxUnavailable(intstr.FromString("100%"))))
	h.create(validShim("mso-b", maxUnavailable(intstr.FromInt32(1))))
	h.create(validShim("mso-c", maxUnavailable(intstr.FromInt32(2))))
	all := map[string]string{}
	for _, n := range nodes {
		all[n] = ready
	}
	// A Shim whose node waits says so while it waits.
	waited := false
	h.eventually("every Shim ready on every node", budgetRollup, func(ctx context.Context) (bool, string, error) {
		done := true
		for _, s := range shims {
			var shim v1alpha1.Shim
			if err := k8s.Get(ctx, client.ObjectKey{Name: s}, &shim); err != nil {
				return false, "", err
			}
			if c := condition(&shim, v1alpha1.ConditionProgressing); c != nil && strings.Contains(c.Message, "for another Shim's operation on the node") {
				waited = true
			}
			states, _, err := h.nodeStates(ctx, s)
			if err != nil {
				return false, "", err
			}
			for _, n := range nodes {
				done = done && states[n] == ready
			}
		}
		return done, "", nil
	})
	for _, s := range shims {
		h.waitShim(s, minute, func(s *v1alpha1.Shim) bool { return settled(s) && s.Status.Nodes.Ready == int32(len(nodes)) })
	}
	if !waited {
		t.Error("no Shim's status ever said that a node waits for another Shim's operation")
	}

	for _, s := range shims {
		if err := k8s.Delete(h.ctx, &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: s}}); err != nil {
			t.Fatal(err)
		}
	}
	h.eventually("Shims uninstalled and gone", budgetRollup, func(ctx context.Context) (bool, string, error) {
		var list v1alpha1.ShimList
		err := k8s.List(ctx, &list)
		return err == nil && !slices.ContainsFunc(list.Items, func(s v1alpha1.Shim) bool { return slices.Contains(shims, s.Name) }),
			fmt.Sprint(len(list.Items)), err
	})

	overlaps, maxJobs := ops.check()
	if len(overlaps) > 0 {
		t.Errorf("node operations overlapped: %v", overlaps)
	}
	if maxJobs["mso-a"] < 2 {
		t.Errorf("mso-a (budget 100%%) never ran two Jobs at once (%v): other Shims' Jobs count against its budget", maxJobs)
	}
	if maxJobs["mso-b"] > 1 || maxJobs["mso-c"] > 2 {
		t.Errorf("Jobs at once per Shim %v exceed the budgets (mso-b 1, mso-c 2)", maxJobs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failedSeen) > 0 {
		t.Errorf("nodes marked failed while waiting: %v", failedSeen)
	}
}

// TestHandlerAndRuntimeClassConflicts: a Shim that claims another Shim's handler or
// RuntimeClass name, or the name of a RuntimeClass wasmkube does not manage, is refused with a
// condition, an Event and a `kubectl get shims` column, and nothing is installed for it; the foreign
// RuntimeClass is never adopted or deleted. When the first Shim goes, the waiting one takes over.
func TestHandlerAndRuntimeClassConflicts(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", map[string]string{"test-pool": "cf"}, nil, "cf-0")
	h.start()
	foreign := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "cf-foreign", Labels: map[string]string{"owner": "someone"}}, Handler: "runc"}
	if err := k8s.Create(h.ctx, foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), foreign) })

	h.create(validShim("cf-first", pool("cf"), func(s *v1alpha1.Shim) { s.Spec.Handler = "cf-h" }))
	h.waitStates("cf-first", map[string]string{"cf-0": ready}, budgetShort)
	h.create(validShim("cf-handler", pool("cf"), func(s *v1alpha1.Shim) { s.Spec.Handler = "cf-h" }))
	h.create(validShim("cf-rcname", pool("cf"), func(s *v1alpha1.Shim) { s.Spec.RuntimeClass.Name = "cf-first" }))
	h.create(validShim("cf-rcforeign", pool("cf"), func(s *v1alpha1.Shim) { s.Spec.RuntimeClass.Name = "cf-foreign" }))

	for name, want := range map[string]struct{ reason, says string }{
		"cf-handler":   {v1alpha1.ReasonHandlerConflict, "handler cf-h belongs to Shim cf-first"},
		"cf-rcname":    {v1alpha1.ReasonRuntimeClassConflict, "RuntimeClass cf-first belongs to Shim cf-first"},
		"cf-rcforeign": {v1alpha1.ReasonRuntimeClassConflict, "RuntimeClass cf-foreign exists and is not managed by wasmkube"},
	} {
		s := h.waitShim(name, minute, func(s *v1alpha1.Shim) bool {
			c := condition(s, v1alpha1.ConditionDegraded)
			return c != nil && c.Reason == want.reason && s.Status.ObservedGeneration == s.Generation
		})
		if c := condition(s, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, want.says) {
			t.Errorf("%s: Degraded %s %q, want True saying %q", name, c.Status, c.Message, want.says)
		}
		if c := condition(s, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != want.reason {
			t.Errorf("%s: Ready = %+v, want False/%s", name, c, want.reason)
		}
		if msgs := h.events(name, want.reason, 1); len(msgs) == 0 || !strings.Contains(msgs[0], want.says) {
			t.Errorf("%s: %s Events %q, want one saying %q", name, want.reason, msgs, want.says)
		}
		if row := h.printedColumns(name); row["Degraded"] != want.reason {
			t.Errorf("%s: kubectl get shims shows %v, want Degraded=%s", name, row, want.reason)
		}
	}
	// Positive control of the printer column.
	if row := h.printedColumns("cf-first"); row["Degraded"] != v1alpha1.ReasonNoFailures || row["Ready"] != "1" {
		t.Errorf("cf-first: kubectl get shims shows %v", row)
	}
	// Nothing installed for the refused Shims, and the foreign RuntimeClass is untouched.
	for _, name := range []string{"cf-handler", "cf-rcname", "cf-rcforeign"} {
		var jobs batchv1.JobList
		if err := k8s.List(h.ctx, &jobs, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: name}); err != nil || len(jobs.Items) > 0 {
			t.Errorf("%s: %d Jobs (%v), want none", name, len(jobs.Items), err)
		}
	}
	h.waitStates("cf-handler", map[string]string{}, minute)
	checkForeign := func(when string) {
		t.Helper()
		var rc nodev1.RuntimeClass
		if err := k8s.Get(h.ctx, client.ObjectKey{Name: "cf-foreign"}, &rc); err != nil {
			t.Fatalf("%s: the foreign RuntimeClass: %v", when, err)
		}
		if len(rc.OwnerReferences) > 0 || rc.Handler != "runc" || rc.Scheduling != nil || rc.Labels[LabelManagedBy] != "" {
			t.Errorf("%s: the foreign RuntimeClass was changed: %+v", when, rc)
		}
	}
	checkForeign("while claimed")
	var rc nodev1.RuntimeClass
	if err := k8s.Get(h.ctx, client.ObjectKey{Name: "cf-first"}, &rc); err != nil || !metav1.IsControlledBy(&rc, h.shim("cf-first")) {
		t.Errorf("RuntimeClass cf-first: %v, owners %v; want it kept by Shim cf-first", err, rc.OwnerReferences)
	}

	// The Shim that claims a foreign RuntimeClass goes: the RuntimeClass stays.
	if err := k8s.Delete(h.ctx, h.shim("cf-rcforeign")); err != nil {
		t.Fatal(err)
	}
	h.eventually("cf-rcforeign gone", minute, func(ctx context.Context) (bool, string, error) {
		err := k8s.Get(ctx, client.ObjectKey{Name: "cf-rcforeign"}, &v1alpha1.Shim{})
		return apierrors.IsNotFound(err), fmt.Sprint(err), client.IgnoreNotFound(err)
	})
	checkForeign("after the claiming Shim was deleted")

	// The first Shim goes: the handler and the RuntimeClass name pass to the Shims that waited.
	if err := k8s.Delete(h.ctx, h.shim("cf-first")); err != nil {
		t.Fatal(err)
	}
	h.waitStates("cf-handler", map[string]string{"cf-0": ready}, budgetShort)
	h.waitStates("cf-rcname", map[string]string{"cf-0": ready}, budgetShort)
	h.eventually("RuntimeClass cf-first now Shim cf-rcname's", minute, func(ctx context.Context) (bool, string, error) {
		var rc nodev1.RuntimeClass
		err := k8s.Get(ctx, client.ObjectKey{Name: "cf-first"}, &rc)
		return err == nil && metav1.IsControlledBy(&rc, h.shim("cf-rcname")) && rc.Handler == "cf-rcname", fmt.Sprint(rc.OwnerReferences), client.IgnoreNotFound(err)
	})
	for _, name := range []string{"cf-handler", "cf-rcname"} {
		h.waitShim(name, minute, func(s *v1alpha1.Shim) bool {
			c := condition(s, v1alpha1.ConditionDegraded)
			return c != nil && c.Reason == v1alpha1.ReasonNoFailures
		})
	}
}

// TestOptionsReachTheJob: option values of every type go through the API server and the
// manager into the installer Job's arguments exactly: parsed as the installer parses them, each is the
// value and type the Shim was written with. (test/installer's TestManyShimsRandomized carries such
// values from the installer's arguments into containerd's own config dump.)
func TestOptionsReachTheJob(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", map[string]string{"test-pool": "opt"}, nil, "opt-0")
	h.start()
	h.create(validShim("opt", pool("opt"), options(map[string]string{
		"Quoted": `"with \"quotes\""`, "Path": `"C:\\path\\"`, "Tab": `"a\tb"`, "Unicode": `"\u00e9\u65e5\ud83d\ude42"`,
		"Newline": `"line\nbreak"`, "Max": "9223372036854775807", "Min": "-9223372036854775808", "Ratio": "0.25",
		"Tiny": "1e-7", "Flag": "false", "List": `["a", "b \"c\"", ""]`, "Empty": `""`,
	})))
	want := map[string]any{"Quoted": `with "quotes"`, "Path": `C:\path\`, "Tab": "a\tb", "Unicode": "é日🙂",
		"Newline": "line\nbreak", "Max": int64(9223372036854775807), "Min": int64(-9223372036854775808), "Ratio": 0.25,
		"Tiny": 1e-7, "Flag": false, "List": []string{"a", `b "c"`, ""}, "Empty": ""}
	var job batchv1.Job
	h.eventually("install Job of Shim opt", minute, func(ctx context.Context) (bool, string, error) {
		var jobs batchv1.JobList
		if err := k8s.List(ctx, &jobs, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: "opt"}); err != nil || len(jobs.Items) == 0 {
			return false, "", err
		}
		job = jobs.Items[0]
		return true, "", nil
	})
	got := map[string]any{}
	for _, arg := range job.Spec.Template.Spec.Containers[0].Args {
		flag, ok := strings.CutPrefix(arg, "--option=")
		if !ok {
			continue
		}
		o, err := containerdcfg.ParseOption(flag)
		if err != nil {
			t.Fatalf("the installer cannot parse the Job's %s: %v", arg, err)
		}
		got[o.Key] = o.Value
	}
	for k, v := range want {
		if o := (containerdcfg.Option{Key: k, Value: got[k]}); !o.Equal(containerdcfg.Option{Key: k, Value: v}) {
			t.Errorf("option %s reaches the installer as %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the Job passes %d options, want %d: %v", len(got), len(want), got)
	}
}

// shim reads a Shim (for its UID).
func (h *harness) shim(name string) *v1alpha1.Shim {
	h.t.Helper()
	var s v1alpha1.Shim
	if err := k8s.Get(h.ctx, client.ObjectKey{Name: name}, &s); err != nil {
		h.t.Fatal(err)
	}
	return &s
}

// printedColumns returns what `kubectl get shims NAME` prints: the API server's Table of the Shim, as
// column name -> cell.
func (h *harness) printedColumns(name string) map[string]string {
	h.t.Helper()
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		h.t.Fatal(err)
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis", v1alpha1.GroupVersion.Group, v1alpha1.GroupVersion.Version, "shims", name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(h.ctx)
	if err != nil {
		h.t.Fatalf("get the Table of Shim %s: %v", name, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		h.t.Fatalf("decode the Table of Shim %s: %v", name, err)
	}
	if len(table.Rows) != 1 {
		h.t.Fatalf("Table of Shim %s has %d rows", name, len(table.Rows))
	}
	row := map[string]string{}
	for i, c := range table.ColumnDefinitions {
		row[c.Name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	return row
}
