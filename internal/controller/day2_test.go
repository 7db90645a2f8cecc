package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/kwoktest"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// addNodesWithRuntime creates KWOK nodes that report a container runtime version.
func (h *harness) addNodesWithRuntime(runtime string, labels map[string]string, names ...string) {
	h.t.Helper()
	var nodes []*corev1.Node
	for _, name := range names {
		n := kwoktest.Node(name, "amd64", labels, nil)
		n.Status.NodeInfo.ContainerRuntimeVersion = runtime
		nodes = append(nodes, n)
		h.nodes = append(h.nodes, name)
	}
	if err := kwoktest.CreateNodes(h.ctx, k8s, nodes...); err != nil {
		h.t.Fatal(err)
	}
}

// patchNodeStatus merge-patches a node's status, as a kubelet reports a change.
func (h *harness) patchNodeStatus(node string, status map[string]any) {
	h.t.Helper()
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		h.t.Fatal(err)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := k8s.Status().Patch(h.ctx, n, client.RawPatch(types.MergePatchType, body)); err != nil {
		h.t.Fatalf("patch the status of node %s: %v", node, err)
	}
}

// handlers sets the runtime handlers a node's kubelet reports.
func (h *harness) handlers(node string, names ...string) {
	h.t.Helper()
	list := make([]map[string]any, 0, len(names))
	for _, n := range names {
		list = append(list, map[string]any{"name": n})
	}
	h.patchNodeStatus(node, map[string]any{"runtimeHandlers": list})
}

// jobs lists the test's Jobs of a Shim and operation on a node.
func (h *harness) jobs(ctx context.Context, shim string, op rollout.Operation, node string) ([]batchv1.Job, error) {
	var list batchv1.JobList
	if err := k8s.List(ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: shim, LabelOperation: string(op)}); err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if j.Spec.Template.Spec.NodeName == node {
			out = append(out, j)
		}
	}
	return out, nil
}

// metric reads one series of the manager's metrics ("name{labels}" as gather writes it).
func (h *harness) metric(series string) float64 {
	h.t.Helper()
	return gather(h.t, h.registry)[series]
}

// driftWatch records, from its start, how often each node was labelled drifted for a Shim, and the most
// drifted nodes the Shim's status counted.
type driftWatch struct {
	mu        sync.Mutex
	state     map[string]string
	drifted   map[string]int
	maxStatus int32
}

func (h *harness) watchDrift(shim string) *driftWatch {
	h.t.Helper()
	dw := &driftWatch{state: map[string]string{}, drifted: map[string]int{}}
	nw, err := k8s.Watch(h.ctx, &corev1.NodeList{})
	if err != nil {
		h.t.Fatalf("watch nodes: %v", err)
	}
	sw, err := k8s.Watch(h.ctx, &v1alpha1.ShimList{})
	if err != nil {
		h.t.Fatalf("watch Shims: %v", err)
	}
	h.t.Cleanup(nw.Stop)
	h.t.Cleanup(sw.Stop)
	go func() {
		for ev := range nw.ResultChan() {
			if n, ok := ev.Object.(*corev1.Node); ok {
				dw.mu.Lock()
				now := n.Labels[v1alpha1.NodeStateLabel(shim)]
				if now == string(v1alpha1.NodeDrifted) && dw.state[n.Name] != now {
					dw.drifted[n.Name]++
				}
				dw.state[n.Name] = now
				dw.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev := range sw.ResultChan() {
			if s, ok := ev.Object.(*v1alpha1.Shim); ok && s.Name == shim {
				dw.mu.Lock()
				dw.maxStatus = max(dw.maxStatus, s.Status.Nodes.Drifted)
				dw.mu.Unlock()
			}
		}
	}()
	return dw
}

// snapshot returns how often each node was labelled drifted, and the most drifted nodes in the status.
func (dw *driftWatch) snapshot() (map[string]int, int32) {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	return maps.Clone(dw.drifted), dw.maxStatus
}

// TestRequirementsGating: nodes whose container runtime does not meet a Shim's requirements (too old a
// containerd for the builtin wazero shim, CRI-O) become unsupported with an Event saying why: never
// failed, no failure budget spent (maxFailures 0 does not pause), no Job run there. A node whose
// containerd is upgraded is looked at again and installed; a requirement the Shim adds later makes a
// ready node unsupported; an unparseable constraint holds installs with Degraded=InvalidSpec.
func TestRequirementsGating(t *testing.T) {
	h := newHarness(t)
	labels := map[string]string{"test-pool": "rq"}
	h.addNodesWithRuntime("containerd://1.7.27", labels, "rq-old")
	h.addNodesWithRuntime("cri-o://1.30.0", labels, "rq-crio")
	h.addNodesWithRuntime("containerd://2.1.5-k3s1", labels, "rq-new")
	h.start()
	tr := h.track("rq")
	h.create(validShim("rq", pool("rq"), maxUnavailable(intstr.FromInt32(3)), func(s *v1alpha1.Shim) {
		s.Spec.Rollout.MaxFailures = new(int32) // 0: any failure would pause the rollout
	}))
	h.waitStates("rq", map[string]string{"rq-old": unsupported, "rq-crio": unsupported, "rq-new": ready}, budgetShort)
	s := h.waitShim("rq", minute, func(s *v1alpha1.Shim) bool { return settled(s) && s.Status.Nodes.Ready == 1 })
	if n := s.Status.Nodes; n.Selected != 3 || n.Unsupported != 2 || n.Failed != 0 {
		t.Errorf("status nodes %+v, want 3 selected, 2 unsupported, 0 failed", n)
	}
	if c := condition(s, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition %+v, want True: the unsupported nodes are not counted against it", c)
	}
	if c := condition(s, v1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded condition %+v, want False: unsupported nodes are not failures", c)
	}
	msgs := strings.Join(h.events("rq", v1alpha1.ReasonUnsupportedRuntime, 2), "\n")
	for _, want := range []string{"node rq-old: containerd 1.7.27 does not satisfy >=2.0 (the builtin wazero shim needs it)",
		"node rq-crio: the node's container runtime is cri-o://1.30.0, not containerd"} {
		if !strings.Contains(msgs, want) {
			t.Errorf("UnsupportedRuntime events lack %q:\n%s", want, msgs)
		}
	}
	if _, _, jobs := tr.snapshot(); jobs["rq-old"] != 0 || jobs["rq-crio"] != 0 {
		t.Errorf("install Jobs on nodes that do not qualify: %v", jobs)
	}

	// containerd upgraded on rq-old: looked at again, installed.
	h.patchNodeStatus("rq-old", map[string]any{"nodeInfo": map[string]any{"containerRuntimeVersion": "containerd://2.0.0"}})
	h.waitStates("rq", map[string]string{"rq-old": ready, "rq-crio": unsupported, "rq-new": ready}, budgetShort)

	// A requirement added later: rq-new (2.1.5) no longer qualifies; it keeps its hash, so an uninstall
	// would still clean it up.
	h.update("rq", func(s *v1alpha1.Shim) { s.Spec.Requirements.Containerd = "<2.1" })
	hashes := h.waitStates("rq", map[string]string{"rq-old": ready, "rq-crio": unsupported, "rq-new": unsupported}, budgetShort)
	if hashes["rq-new"] == "" {
		t.Error("rq-new lost its hash annotation when it became unsupported")
	}

	h.create(validShim("rq-bad", pool("rq"), func(s *v1alpha1.Shim) { s.Spec.Requirements.Containerd = ">=two" }))
	s = h.waitShim("rq-bad", minute, func(s *v1alpha1.Shim) bool {
		c := condition(s, v1alpha1.ConditionDegraded)
		return c != nil && c.Reason == v1alpha1.ReasonInvalidSpec
	})
	if c := condition(s, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, `spec.requirements.containerd ">=two"`) {
		t.Errorf("InvalidSpec message %q does not name the requirement", c.Message)
	}
	if _, _, jobs := tr.snapshot(); jobs["rq-old"] != 1 {
		t.Errorf("install Jobs %v: rq-old installed once, and nothing for rq-bad", jobs)
	}
}

// TestDriftSelfHealing: a ready node drifts when its kubelet stops listing the handler, when it reboots
// (boot ID) and when containerd changes (containerRuntimeVersion); each drift labels the node drifted,
// counts in status.nodes.drifted, has an Event and a metric, and the node is reinstalled through the
// rollout, which reaches ready again. The reinstall is an ordinary install Job marked as a repair, and
// counts against maxUnavailable: two nodes that drift at once are reinstalled one at a time. A handler
// that goes again after a repair makes the node failed, not reinstalled over and over.
func TestDriftSelfHealing(t *testing.T) {
	h := newHarness(t)
	h.opts.HandlerDeadline = 3 * time.Second
	h.addNodes("amd64", map[string]string{"test-pool": "dr"}, nil, "dr-handler", "dr-boot", "dr-runtime")
	h.start()
	tr := h.track("dr")
	dw := h.watchDrift("dr")
	h.create(validShim("dr", pool("dr"), maxUnavailable(intstr.FromInt32(1))))
	all := func(s string) map[string]string {
		return map[string]string{"dr-handler": s, "dr-boot": s, "dr-runtime": s}
	}
	h.waitStates("dr", all(ready), budgetShort)
	recorded := func(node string) string {
		var n corev1.Node
		if err := k8s.Get(h.ctx, client.ObjectKey{Name: node}, &n); err != nil {
			t.Fatal(err)
		}
		return n.Annotations[v1alpha1.NodeRuntimeAnnotation("dr")]
	}
	h.eventually("runtime annotations", minute, func(context.Context) (bool, string, error) {
		got := recorded("dr-boot")
		return got == "containerd://2.4.2 boot=", got, nil
	})

	// The kubelet lists the handler: nothing happens (the positive control of the handler check). Nor
	// when it cannot ask containerd for its version for a while (it reports "containerd://Unknown"
	// during a containerd restart): that is not a containerd change, nor a runtime that fails the
	// requirements.
	h.handlers("dr-handler", "runc", "dr")
	h.patchNodeStatus("dr-runtime", map[string]any{"nodeInfo": map[string]any{"containerRuntimeVersion": "containerd://Unknown"}})
	time.Sleep(4 * time.Second) // past the handler deadline
	h.waitStates("dr", all(ready), 5*time.Second)
	if drifted, _ := dw.snapshot(); len(drifted) != 0 {
		t.Fatalf("nodes labelled drifted while the kubelet lists the handler or cannot reach containerd: %v", drifted)
	}
	h.patchNodeStatus("dr-runtime", map[string]any{"nodeInfo": map[string]any{"containerRuntimeVersion": "containerd://2.4.2"}})
	if got := recorded("dr-runtime"); got != "containerd://2.4.2 boot=" {
		t.Fatalf("dr-runtime's recorded runtime %q, want the one it was installed on", got)
	}

	// It stops listing it (containerd got its old config back): drifted, reinstalled; the reinstall
	// brings the handler back, so the node stays ready.
	start := time.Now()
	h.handlers("dr-handler", "runc")
	h.eventually("a repair Job for dr-handler", minute, func(ctx context.Context) (bool, string, error) {
		jobs, err := h.jobs(ctx, "dr", rollout.Install, "dr-handler")
		if err != nil || len(jobs) != 1 {
			return false, fmt.Sprint(len(jobs)), err
		}
		return jobs[0].Labels[LabelRepair] == "true", fmt.Sprint(jobs[0].Labels), nil
	})
	t.Logf("FIGURE handler dropped -> repair Job created: %s", time.Since(start).Round(time.Millisecond))
	h.handlers("dr-handler", "runc", "dr")
	h.waitStates("dr", all(ready), minute)
	t.Logf("FIGURE handler dropped -> ready again: %s", time.Since(start).Round(time.Millisecond))

	// A reboot and a containerd upgrade at the same time: two drifted nodes, repaired one at a time
	// (maxUnavailable 1).
	maxBefore, _, _ := tr.snapshot()
	h.patchNodeStatus("dr-boot", map[string]any{"nodeInfo": map[string]any{"bootID": "boot-2"}})
	h.patchNodeStatus("dr-runtime", map[string]any{"nodeInfo": map[string]any{"containerRuntimeVersion": "containerd://2.5.0"}})
	h.waitStates("dr", all(ready), budgetShort)
	h.eventually("the new runtimes are recorded", minute, func(context.Context) (bool, string, error) {
		boot, rt := recorded("dr-boot"), recorded("dr-runtime")
		return boot == "containerd://2.4.2 boot=boot-2" && rt == "containerd://2.5.0 boot=", boot + " / " + rt, nil
	})
	maxInstalling, _, jobs := tr.snapshot()
	if maxInstalling > 1 || maxBefore > 1 {
		t.Errorf("%d nodes reinstalling at once, maxUnavailable 1", maxInstalling)
	}
	if drifted, inStatus := dw.snapshot(); drifted["dr-handler"] != 1 || drifted["dr-boot"] != 1 || drifted["dr-runtime"] != 1 || inStatus < 1 {
		t.Errorf("labelled drifted %v times, at most %d drifted in status.nodes; want each node once, and the one waiting for its repair counted",
			drifted, inStatus)
	}
	if jobs["dr-boot"] != 2 || jobs["dr-runtime"] != 2 || jobs["dr-handler"] != 2 {
		t.Errorf("install Jobs per node %v, want 2 each (the install and one repair)", jobs)
	}
	msgs := strings.Join(h.events("dr", v1alpha1.ReasonNodeDrifted, 3), "\n")
	for _, want := range []string{"node dr-handler: the kubelet does not list the handler in status.runtimeHandlers (",
		"node dr-boot: the node rebooted (boot ID boot-2, was ) (",
		"node dr-runtime: the container runtime changed from containerd://2.4.2 to containerd://2.5.0 ("} {
		if !strings.Contains(msgs, want) {
			t.Errorf("NodeDrifted events lack %q:\n%s", want, msgs)
		}
	}
	for series, want := range map[string]float64{
		`wasmkube_node_drifts_total{cause="handler",shim="dr"}`: 1,
		`wasmkube_node_drifts_total{cause="reboot",shim="dr"}`:  1,
		`wasmkube_node_drifts_total{cause="runtime",shim="dr"}`: 1,
	} {
		if got := h.metric(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	s := h.waitShim("dr", minute, settled)
	if n := s.Status.Nodes; n.Ready != 3 || n.Drifted != 0 || n.Failed != 0 {
		t.Errorf("status nodes %+v, want 3 ready and nothing drifted or failed", n)
	}

	// The handler goes again soon after the repair (while its Job is kept): failed, with the reason, and
	// not reinstalled again.
	h.handlers("dr-handler", "runc")
	h.waitStates("dr", map[string]string{"dr-handler": failed, "dr-boot": ready, "dr-runtime": ready}, minute)
	if msgs := h.events("dr", v1alpha1.ReasonHandlerNotReported, 1); len(msgs) != 1 ||
		!strings.Contains(msgs[0], "node dr-handler: the kubelet does not list the handler in status.runtimeHandlers ") ||
		!strings.HasSuffix(msgs[0], "after its reinstall, though the installer found it in the CRI; not reinstalling again") {
		t.Errorf("HandlerNotReported events %q, want one for dr-handler", msgs)
	}
	if _, _, jobs := tr.snapshot(); jobs["dr-handler"] != 2 {
		t.Errorf("install Jobs on dr-handler: %d, want 2 (the install and one repair)", jobs["dr-handler"])
	}
}

// TestVerifyInterval: on nodes whose kubelet reports no runtime handlers (containerd 1.x; KWOK nodes
// report none), the manager runs a verify Job per node every interval. A failed verify makes the node
// drifted and reinstalls it. spec.verify.interval overrides the manager's default (an hour: none in the
// time vf-ok gets three), and 0s switches the Jobs off; nodes that report handlers get none.
func TestVerifyInterval(t *testing.T) {
	h := newHarness(t)
	h.opts.Jobs.VerifyInterval = 2 * time.Second
	h.addNodes("amd64", map[string]string{"test-pool": "vf"}, nil, "vf-ok", "verifyfail-0", "vf-handlers")
	h.addNodes("amd64", map[string]string{"test-pool": "vf-off"}, nil, "vf-off")
	h.addNodes("amd64", map[string]string{"test-pool": "vf-hour"}, nil, "vf-hour")
	h.handlers("vf-handlers", "runc", "vf")
	h.start()
	h.create(validShim("vf", pool("vf"), maxUnavailable(intstr.FromInt32(3))))
	h.create(validShim("vf-off", pool("vf-off"), func(s *v1alpha1.Shim) { s.Spec.Verify.Interval = &metav1.Duration{} }))
	h.create(validShim("vf-hour", pool("vf-hour"), func(s *v1alpha1.Shim) { s.Spec.Verify.Interval = &metav1.Duration{Duration: time.Hour} }))
	h.waitStates("vf", map[string]string{"vf-ok": ready, "verifyfail-0": ready, "vf-handlers": ready}, budgetShort)
	h.waitStates("vf-off", map[string]string{"vf-off": ready}, budgetShort)
	h.waitStates("vf-hour", map[string]string{"vf-hour": ready}, budgetShort)

	// vf-ok: one verify Job after another (each expires one interval after it finished).
	var seen = map[string]bool{}
	h.eventually("three verify Jobs on vf-ok", minute, func(ctx context.Context) (bool, string, error) {
		jobs, err := h.jobs(ctx, "vf", rollout.Verify, "vf-ok")
		for _, j := range jobs {
			seen[string(j.UID)] = true
			if ttl := j.Spec.TTLSecondsAfterFinished; ttl == nil || *ttl != 2 {
				return false, "", fmt.Errorf("verify Job %s has ttlSecondsAfterFinished %v, want the interval (2)", j.Name, ttl)
			}
		}
		return len(seen) >= 3, fmt.Sprint(len(seen)), err
	})

	// verifyfail-0: its verify Jobs fail (the shim binary no longer runs): drifted, reinstalled.
	msgs := h.events("vf", v1alpha1.ReasonNodeDrifted, 1)
	if len(msgs) == 0 || !strings.Contains(msgs[0], "node verifyfail-0: the verify Job failed: ShimNotRunnable") {
		t.Errorf("NodeDrifted events %q, want one for verifyfail-0 naming the verify failure", msgs)
	}
	h.eventually("a repair of verifyfail-0", minute, func(ctx context.Context) (bool, string, error) {
		jobs, err := h.jobs(ctx, "vf", rollout.Install, "verifyfail-0")
		return len(jobs) == 1 && jobs[0].Labels[LabelRepair] == "true", fmt.Sprint(len(jobs)), err
	})
	if got := h.metric(`wasmkube_node_drifts_total{cause="verify",shim="vf"}`); got < 1 {
		t.Errorf("verify drifts counted: %v, want at least 1", got)
	}

	// None where the kubelet reports handlers, where the Shim switched them off, or where its interval
	// has not passed.
	for shim, node := range map[string]string{"vf": "vf-handlers", "vf-off": "vf-off", "vf-hour": "vf-hour"} {
		if jobs, err := h.jobs(h.ctx, shim, rollout.Verify, node); err != nil || len(jobs) != 0 {
			t.Errorf("verify Jobs of Shim %s on node %s: %d (%v), want none", shim, node, len(jobs), err)
		}
	}
}
