package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

const (
	ready        = string(v1alpha1.NodeReady)
	failed       = string(v1alpha1.NodeFailed)
	unsupported  = string(v1alpha1.NodeUnsupported)
	installing   = string(v1alpha1.NodeInstalling)
	optIn        = "true"
	minute       = time.Minute
	budgetShort  = 90 * time.Second
	budgetRollup = 3 * time.Minute
)

func enabled(v string) map[string]string { return map[string]string{v1alpha1.EnabledAnnotation: v} }

func maxUnavailable(v intstr.IntOrString) func(*v1alpha1.Shim) {
	return func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxUnavailable = &v }
}

func allNodes(s *v1alpha1.Shim) { s.Spec.NodeSelector = map[string]string{} }

func pool(p string) func(*v1alpha1.Shim) {
	return func(s *v1alpha1.Shim) { s.Spec.NodeSelector = map[string]string{"test-pool": p} }
}

// TestSelectionAndRuntimeClass covers annotation opt-in and opt-out, label pools and all-nodes, and the
// RuntimeClass that schedules only onto ready nodes.
func TestSelectionAndRuntimeClass(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", nil, enabled(optIn), "sel-annotated")
	h.addNodes("amd64", nil, nil, "sel-plain")
	h.addNodes("amd64", map[string]string{"test-pool": "sel"}, nil, "sel-pool")
	h.addNodes("amd64", map[string]string{"test-pool": "sel"}, enabled("false"), "sel-pool-optout")
	h.addNodes("amd64", map[string]string{"test-pool": "sel"}, nil, "fail-sel-pool")
	h.start()

	tolerations := []corev1.Toleration{{Key: "wasm", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	h.create(validShim("sel-null", maxUnavailable(intstr.FromString("100%"))))
	h.create(validShim("sel-all", allNodes, maxUnavailable(intstr.FromInt32(5)), func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxFailures = ptr.To(int32(5)) }))
	h.create(validShim("sel-pool", pool("sel"), maxUnavailable(intstr.FromInt32(5)), func(s *v1alpha1.Shim) {
		s.Spec.Rollout.MaxFailures = ptr.To(int32(5))
		s.Spec.RuntimeClass = v1alpha1.RuntimeClassSpec{Name: "wasm-pool", Tolerations: tolerations,
			Overhead: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}}
	}))

	h.waitStates("sel-null", map[string]string{"sel-annotated": ready}, budgetShort)
	h.waitStates("sel-all", map[string]string{"sel-annotated": ready, "sel-plain": ready, "sel-pool": ready,
		"fail-sel-pool": failed}, budgetShort)
	h.waitStates("sel-pool", map[string]string{"sel-pool": ready, "fail-sel-pool": failed}, budgetShort)

	s := h.waitShim("sel-all", minute, settled)
	if got := s.Status.Nodes; got.Selected != 4 || got.Ready != 3 || got.Failed != 1 {
		t.Errorf("sel-all counts %+v: want 4 selected, 3 ready, 1 failed", got)
	}
	if c := condition(s, v1alpha1.ConditionDegraded); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonNodesFailed {
		t.Errorf("sel-all Degraded = %+v, want True/NodesFailed", c)
	}
	if msgs := h.events("sel-all", v1alpha1.ReasonInstallFailed, 1); len(msgs) != 1 || !strings.Contains(msgs[0], "VerifyFailed") {
		t.Errorf("InstallFailed events %q: want one naming the installer's reason VerifyFailed", msgs)
	}

	// The RuntimeClass of sel-pool: handler, tolerations, overhead, and a node selector that matches only
	// the ready node.
	var rc nodev1.RuntimeClass
	if err := k8s.Get(h.ctx, client.ObjectKey{Name: "wasm-pool"}, &rc); err != nil {
		t.Fatalf("RuntimeClass wasm-pool: %v", err)
	}
	if rc.Handler != "sel-pool" || rc.Overhead == nil || rc.Overhead.PodFixed.Memory().String() != "16Mi" ||
		len(rc.Scheduling.Tolerations) != 1 || rc.Scheduling.Tolerations[0].Key != "wasm" ||
		!metav1.IsControlledBy(&rc, s) && rc.OwnerReferences[0].Name != "sel-pool" {
		t.Errorf("RuntimeClass wasm-pool = %+v", rc)
	}
	var matching corev1.NodeList
	if err := k8s.List(h.ctx, &matching, client.MatchingLabels(rc.Scheduling.NodeSelector)); err != nil {
		t.Fatal(err)
	}
	if len(matching.Items) != 1 || matching.Items[0].Name != "sel-pool" {
		t.Errorf("RuntimeClass nodeSelector %v matches %d nodes, want only sel-pool", rc.Scheduling.NodeSelector, len(matching.Items))
	}
	// Someone edits the RuntimeClass' handler-independent fields: the manager puts them back.
	rc.Scheduling.NodeSelector = map[string]string{"x": "y"}
	if err := k8s.Update(h.ctx, &rc); err != nil {
		t.Fatal(err)
	}
	h.eventually("RuntimeClass restored", minute, func(ctx context.Context) (bool, string, error) {
		var got nodev1.RuntimeClass
		err := k8s.Get(ctx, client.ObjectKey{Name: "wasm-pool"}, &got)
		return err == nil && got.Scheduling.NodeSelector[v1alpha1.NodeStateLabel("sel-pool")] == ready, fmt.Sprint(got.Scheduling), err
	})

	// Opt-out: wasmkube.io/enabled=false uninstalls from the opted-in and the all-nodes Shims.
	var node corev1.Node
	if err := k8s.Get(h.ctx, client.ObjectKey{Name: "sel-annotated"}, &node); err != nil {
		t.Fatal(err)
	}
	node.Annotations[v1alpha1.EnabledAnnotation] = "false"
	if err := k8s.Update(h.ctx, &node); err != nil {
		t.Fatal(err)
	}
	h.waitStates("sel-null", map[string]string{}, budgetShort)
	hashes := h.waitStates("sel-all", map[string]string{"sel-plain": ready, "sel-pool": ready, "fail-sel-pool": failed}, budgetShort)
	if hashes["sel-annotated"] != "" {
		t.Errorf("opted-out node keeps hash annotation %q", hashes["sel-annotated"])
	}
	if msgs := h.events("sel-null", v1alpha1.ReasonUninstalled, 1); len(msgs) != 1 {
		t.Errorf("Uninstalled events of sel-null: %q, want one", msgs)
	}
	h.waitShim("sel-null", minute, func(s *v1alpha1.Shim) bool {
		c := condition(s, v1alpha1.ConditionReady)
		return settled(s) && s.Status.Nodes.Selected == 0 && c != nil && c.Reason == v1alpha1.ReasonNoNodesSelected
	})
}

// TestPlatforms covers mixed arm64/amd64 nodes: an HTTP source for arm64 only marks amd64 nodes
// unsupported without a Job, and an OCI index decides per node through the registry.
func TestPlatforms(t *testing.T) {
	h := newHarness(t)
	reg := newRegistry(t)
	both := reg.push(t, "shims/spin:both", "linux/amd64", "linux/arm64")
	armOnly := reg.push(t, "shims/spin:arm", "linux/arm64")
	h.addNodes("amd64", map[string]string{"test-pool": "plat"}, nil, "plat-amd-0", "plat-amd-1")
	h.addNodes("arm64", map[string]string{"test-pool": "plat"}, nil, "plat-arm-0", "plat-arm-1")
	h.start()
	tr := h.track("plat-http")

	h.create(validShim("plat-http", pool("plat"), maxUnavailable(intstr.FromInt32(2)), func(s *v1alpha1.Shim) {
		s.Spec.Source = v1alpha1.ShimSource{HTTP: &v1alpha1.HTTPSource{Platforms: []v1alpha1.HTTPArtifact{
			{OS: "linux", Arch: "arm64", URL: "https://example.com/shim-arm64.tar.gz", SHA256: sha}}}}
	}))
	h.create(validShim("plat-oci-both", pool("plat"), maxUnavailable(intstr.FromInt32(2)), func(s *v1alpha1.Shim) {
		s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: both, Path: "/containerd-shim-spin-v2"}}
	}))
	h.create(validShim("plat-oci-arm", pool("plat"), maxUnavailable(intstr.FromInt32(2)), func(s *v1alpha1.Shim) {
		s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: armOnly, Path: "/containerd-shim-spin-v2"}}
	}))
	armReady := map[string]string{"plat-amd-0": unsupported, "plat-amd-1": unsupported, "plat-arm-0": ready, "plat-arm-1": ready}
	h.waitStates("plat-http", armReady, budgetShort)
	h.waitStates("plat-oci-arm", armReady, budgetShort)
	h.waitStates("plat-oci-both", map[string]string{"plat-amd-0": ready, "plat-amd-1": ready, "plat-arm-0": ready, "plat-arm-1": ready}, budgetShort)

	s := h.waitShim("plat-http", minute, settled)
	if got := s.Status.Nodes; got.Selected != 4 || got.Ready != 2 || got.Unsupported != 2 {
		t.Errorf("plat-http counts %+v: want 4 selected, 2 ready, 2 unsupported", got)
	}
	if c := condition(s, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("plat-http Ready = %+v: unsupported nodes must not hold Ready", c)
	}
	_, _, jobs := tr.snapshot()
	if jobs["plat-amd-0"] != 0 || jobs["plat-amd-1"] != 0 || jobs["plat-arm-0"] != 1 || jobs["plat-arm-1"] != 1 {
		t.Errorf("install Jobs per node %v: want one per arm64 node and none for amd64", jobs)
	}
	// The HTTP Job carries the arm64 URL and digest.
	var list batchv1.JobList
	if err := k8s.List(h.ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: "plat-http"}); err != nil {
		t.Fatal(err)
	}
	for _, j := range list.Items {
		args := strings.Join(j.Spec.Template.Spec.Containers[0].Args, " ")
		if !strings.Contains(args, "--source-http-url=https://example.com/shim-arm64.tar.gz --source-sha256="+sha) {
			t.Errorf("Job %s args %q lack the arm64 download", j.Name, args)
		}
	}
	if reg.manifestReads("shims/spin:both") != 1 {
		t.Errorf("the OCI index was read %d times, want once per spec", reg.manifestReads("shims/spin:both"))
	}
}

// TestRolloutBudgetCanaryAndRestart rolls out to 12 nodes with maxUnavailable 3, restarting the manager
// mid-rollout: never more than 3 nodes install at once, the first node installs alone, and every node
// gets exactly one install Job despite the restart.
func TestRolloutBudgetCanaryAndRestart(t *testing.T) {
	h := newHarness(t)
	nodes := names("budget", 12)
	h.addNodes("amd64", map[string]string{"test-pool": "budget"}, nil, nodes...)
	h.start()
	tr := h.track("budget")
	h.create(validShim("budget", pool("budget"), maxUnavailable(intstr.FromInt32(3))))

	h.eventually("a third of the nodes ready", budgetShort, func(ctx context.Context) (bool, string, error) {
		states, _, err := h.nodeStates(ctx, "budget")
		n := 0
		for _, s := range states {
			if s == ready {
				n++
			}
		}
		return n >= 4, fmt.Sprint(states), err
	})
	h.stop()
	time.Sleep(2 * time.Second) // let running Jobs finish while no manager runs
	h.start()

	want := map[string]string{}
	for _, n := range nodes {
		want[n] = ready
	}
	h.waitStates("budget", want, budgetRollup)
	s := h.waitShim("budget", minute, settled)
	maxInst, beforeReady, jobs := tr.snapshot()
	t.Logf("max nodes installing at once: %d (maxUnavailable 3); before the first ready node: %d", maxInst, beforeReady)
	if maxInst > 3 {
		t.Errorf("%d nodes installing at once, maxUnavailable is 3", maxInst)
	}
	if maxInst < 2 {
		t.Errorf("at most %d node installing at once: the rollout did not use its budget of 3", maxInst)
	}
	if beforeReady != 1 {
		t.Errorf("%d nodes installing before the canary was ready, want 1", beforeReady)
	}
	if v := tr.slowStartViolations(); len(v) > 0 {
		t.Errorf("more nodes in flight than slow start allows, across the manager's restart:\n%s", strings.Join(v, "\n"))
	}
	for _, n := range nodes {
		if jobs[n] != 1 {
			t.Errorf("node %s got %d install Jobs, want exactly 1 (jobs: %v)", n, jobs[n], jobs)
		}
	}
	if c := condition(s, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || s.Status.Nodes.Ready != 12 {
		t.Errorf("Shim status %+v: want Ready with 12 nodes", s.Status)
	}
}

// TestSlowStart rolls out to 36 nodes with maxUnavailable 100%; the 6th node in name order fails, while
// most nodes still wait.
// Watching the node labels, it checks slow start as an observer sees it: whenever a node turns
// installing, at most one more node is in flight than have turned ready since the last failure (the
// canary alone, then doubling with each fully successful wave, and back to 1 after the failure). The
// positive controls: the rollout does grow (at least 8 nodes in flight at once, status.rollout.waveSize
// at least 8, shown by `kubectl get shims`), and it completes despite the failure (maxFailures 1).
func TestSlowStart(t *testing.T) {
	h := newHarness(t)
	before, after := names("a-ss", 5), names("z-ss", 30)
	nodes := append(append(slices.Clone(before), "fail-ss"), after...)
	h.addNodes("amd64", map[string]string{"test-pool": "ss"}, nil, nodes...)
	h.start()
	tr := h.track("ss")
	waves := h.trackWaves("ss")
	h.create(validShim("ss", pool("ss"), maxUnavailable(intstr.FromString("100%"))))

	want := map[string]string{"fail-ss": failed}
	for _, n := range append(before, after...) {
		want[n] = ready
	}
	h.waitStates("ss", want, budgetRollup)
	s := h.waitShim("ss", minute, settled)
	maxInst, beforeReady, _ := tr.snapshot()
	seen := waves()
	t.Logf("status.rollout.waveSize over time: %v; most nodes in flight at once: %d", seen, maxInst)
	if v := tr.slowStartViolations(); len(v) > 0 {
		t.Errorf("more nodes in flight than slow start allows:\n%s", strings.Join(v, "\n"))
	}
	if beforeReady != 1 {
		t.Errorf("%d nodes in flight before the canary was ready, want 1", beforeReady)
	}
	maxWave := 0
	for _, w := range seen {
		maxWave = max(maxWave, w)
	}
	if maxInst < 8 || maxWave < 8 {
		t.Errorf("at most %d nodes in flight and a wave size of at most %d: slow start did not grow to 8", maxInst, maxWave)
	}
	if s.Status.Rollout.MaxUnavailable != 36 || s.Status.Nodes.Ready != 35 || s.Status.Nodes.Failed != 1 {
		t.Errorf("status %+v %+v: want maxUnavailable 36, 35 ready, 1 failed", s.Status.Rollout, s.Status.Nodes)
	}
	row := h.printedColumns("ss")
	if row["Wave"] != fmt.Sprint(s.Status.Rollout.WaveSize) || row["Installing"] != "0" || row["Ready"] != "35" {
		t.Errorf("kubectl get shims prints %v; want Wave %d, Installing 0, Ready 35", row, s.Status.Rollout.WaveSize)
	}
}

// TestFailureBudgetPauseAndResume: failures beyond maxFailures pause the rollout with Degraded and an
// Event; raising the budget resumes it.
func TestFailureBudgetPauseAndResume(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", map[string]string{"test-pool": "fb"}, nil, "fail-fb-0", "fail-fb-1", "fail-fb-2")
	h.addNodes("amd64", map[string]string{"test-pool": "fb"}, nil, names("ok-fb", 4)...)
	h.start()
	// Nodes go in name order: the fail-* nodes are first, so the canaries fail.
	h.create(validShim("fb", pool("fb"), maxUnavailable(intstr.FromInt32(2))))

	s := h.waitShim("fb", budgetShort, func(s *v1alpha1.Shim) bool {
		c := condition(s, v1alpha1.ConditionDegraded)
		return c != nil && c.Reason == v1alpha1.ReasonRolloutPaused && s.Status.Nodes.Installing == 0
	})
	if s.Status.Nodes.Failed != 2 || s.Status.Nodes.Ready != 0 {
		t.Errorf("paused with %+v: want 2 failed (maxFailures 1), 0 ready", s.Status.Nodes)
	}
	if p := condition(s, v1alpha1.ConditionProgressing); p == nil || p.Status != metav1.ConditionFalse || p.Reason != v1alpha1.ReasonRolloutPaused {
		t.Errorf("Progressing = %+v, want False/RolloutPaused", p)
	}
	time.Sleep(3 * time.Second) // a paused rollout starts nothing
	states, _, err := h.nodeStates(h.ctx, "fb")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names("ok-fb", 4) {
		if states[n] != "" {
			t.Errorf("node %s is %q while the rollout is paused", n, states[n])
		}
	}
	if msgs := h.events("fb", v1alpha1.ReasonRolloutPaused, 1); len(msgs) != 1 {
		t.Errorf("RolloutPaused events: %q, want one", msgs)
	}

	h.update("fb", func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxFailures = ptr.To(int32(5)) })
	want := map[string]string{"fail-fb-0": failed, "fail-fb-1": failed, "fail-fb-2": failed}
	for _, n := range names("ok-fb", 4) {
		want[n] = ready
	}
	h.waitStates("fb", want, budgetShort)
	s = h.waitShim("fb", minute, settled)
	if c := condition(s, v1alpha1.ConditionDegraded); c == nil || c.Reason != v1alpha1.ReasonNodesFailed {
		t.Errorf("after resuming, Degraded = %+v, want NodesFailed", c)
	}
}

// TestUnsupportedHostSpendsNoBudget: installers that find their host unsupported (the Talos and
// Bottlerocket profiles; KWOK's "unsupported-*" nodes answer as the node-installer does, exit 0 with
// reason UnsupportedHost) make those nodes unsupported, never failed: with no failure allowed the rollout
// goes on, and the Shim is Ready with the supported nodes ready. TestFailureBudgetPauseAndResume is the
// positive control: failing installers pause the rollout.
func TestUnsupportedHostSpendsNoBudget(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", map[string]string{"test-pool": "uh"}, nil, "unsupported-uh-0", "unsupported-uh-1")
	h.addNodes("amd64", map[string]string{"test-pool": "uh"}, nil, names("ok-uh", 3)...)
	h.start()
	h.create(validShim("uh", pool("uh"), maxUnavailable(intstr.FromInt32(2)), func(s *v1alpha1.Shim) {
		s.Spec.Rollout.MaxFailures = ptr.To(int32(0))
	}))
	want := map[string]string{"unsupported-uh-0": unsupported, "unsupported-uh-1": unsupported}
	for _, n := range names("ok-uh", 3) {
		want[n] = ready
	}
	h.waitStates("uh", want, budgetShort)
	s := h.waitShim("uh", minute, settled)
	if n := s.Status.Nodes; n.Unsupported != 2 || n.Failed != 0 || n.Ready != 3 {
		t.Errorf("status nodes %+v, want 2 unsupported, 0 failed, 3 ready", n)
	}
	if c := condition(s, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v, want True", c)
	}
	if c := condition(s, v1alpha1.ConditionDegraded); c != nil && c.Status == metav1.ConditionTrue {
		t.Errorf("Degraded = %+v, want not degraded", c)
	}
	msgs := h.events("uh", v1alpha1.ReasonUnsupportedHost, 2)
	if len(msgs) != 2 || !strings.Contains(msgs[0], "read-only") {
		t.Errorf("UnsupportedHost events: %q, want two naming the reason", msgs)
	}
}

// TestUpgradeAndUninstallOnDeletion: a spec change re-installs every ready node through the budget and
// moves the hash annotation; deleting the Shim uninstalls every node, then releases the Shim and its
// RuntimeClass.
func TestUpgradeAndUninstallOnDeletion(t *testing.T) {
	h := newHarness(t)
	nodes := names("up", 4)
	h.addNodes("arm64", map[string]string{"test-pool": "up"}, nil, nodes...)
	h.start()
	h.create(validShim("up", pool("up"), maxUnavailable(intstr.FromInt32(2))))
	want := map[string]string{}
	for _, n := range nodes {
		want[n] = ready
	}
	old := h.waitStates("up", want, budgetShort)
	s := h.waitShim("up", minute, settled)
	if old[nodes[0]] != s.Status.SpecHash || s.Status.SpecHash == "" {
		t.Fatalf("hash annotation %q, status.specHash %q", old[nodes[0]], s.Status.SpecHash)
	}

	tr := h.track("up")
	h.update("up", func(s *v1alpha1.Shim) {
		s.Spec.Options = map[string]apiextensionsv1.JSON{"SystemdCgroup": {Raw: []byte("true")}}
	})
	s = h.waitShim("up", budgetShort, func(s *v1alpha1.Shim) bool {
		return settled(s) && s.Status.SpecHash != old[nodes[0]] && s.Status.Nodes.Ready == 4
	})
	_, hashes, err := h.nodeStates(h.ctx, "up")
	if err != nil {
		t.Fatal(err)
	}
	maxInst, _, jobs := tr.snapshot()
	for _, n := range nodes {
		if hashes[n] != s.Status.SpecHash || jobs[n] != 1 {
			t.Errorf("node %s: hash %q (want %q), %d upgrade Jobs (want 1)", n, hashes[n], s.Status.SpecHash, jobs[n])
		}
	}
	if maxInst > 2 {
		t.Errorf("%d nodes upgrading at once, maxUnavailable 2", maxInst)
	}
	var list batchv1.JobList
	if err := k8s.List(h.ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{LabelSpecHash: s.Status.SpecHash}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) == 0 || !strings.Contains(strings.Join(list.Items[0].Spec.Template.Spec.Containers[0].Args, " "), "--option=SystemdCgroup=true") {
		t.Errorf("upgrade Jobs do not pass the new option")
	}

	if err := k8s.Delete(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.eventually("Shim released after uninstalling", budgetShort, func(ctx context.Context) (bool, string, error) {
		err := k8s.Get(ctx, client.ObjectKey{Name: "up"}, &v1alpha1.Shim{})
		return apierrors.IsNotFound(err), fmt.Sprint(err), client.IgnoreNotFound(err)
	})
	states, hashes, err := h.nodeStates(h.ctx, "up")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if states[n] != "" || hashes[n] != "" {
			t.Errorf("node %s keeps %q/%q after the Shim was deleted", n, states[n], hashes[n])
		}
	}
	if err := k8s.Get(h.ctx, client.ObjectKey{Name: "up"}, &nodev1.RuntimeClass{}); !apierrors.IsNotFound(err) {
		t.Errorf("RuntimeClass up still exists: %v", err)
	}
	if msgs := h.events("up", v1alpha1.ReasonUninstalled, 4); len(msgs) != 4 {
		t.Errorf("%d Uninstalled events, want 4", len(msgs))
	}
}

// TestNodeDeletedMidInstall: a node that leaves the cluster while its install runs is forgotten: its Job
// is deleted and the Shim becomes Ready on the remaining nodes.
func TestNodeDeletedMidInstall(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", map[string]string{"test-pool": "del"}, nil, "a-del", "b-del", "hang-del")
	h.start()
	h.create(validShim("del", pool("del"), maxUnavailable(intstr.FromInt32(2))))
	h.waitStates("del", map[string]string{"a-del": ready, "b-del": ready, "hang-del": installing}, budgetShort)
	jobName := ""
	h.eventually("install Job of hang-del", minute, func(ctx context.Context) (bool, string, error) {
		var list batchv1.JobList
		err := k8s.List(ctx, &list, client.InNamespace(h.ns), client.MatchingLabels{LabelShim: "del"})
		for _, j := range list.Items {
			if j.Spec.Template.Spec.NodeName == "hang-del" {
				jobName = j.Name
			}
		}
		return jobName != "", "", err
	})
	if err := k8s.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "hang-del"}}); err != nil {
		t.Fatal(err)
	}
	h.eventually("Job of the deleted node deleted", minute, func(ctx context.Context) (bool, string, error) {
		var j batchv1.Job
		err := k8s.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: jobName}, &j)
		return apierrors.IsNotFound(err) || j.DeletionTimestamp != nil, "", client.IgnoreNotFound(err)
	})
	h.waitShim("del", minute, func(s *v1alpha1.Shim) bool {
		c := condition(s, v1alpha1.ConditionReady)
		return settled(s) && c != nil && c.Status == metav1.ConditionTrue && s.Status.Nodes.Selected == 2 && s.Status.Nodes.Ready == 2
	})
}

// TestHandlerPostCheck: the kubelet's runtimeHandlers list is checked after the install without holding
// the rollout; a node whose kubelet never lists the handler within the deadline becomes failed.
func TestHandlerPostCheck(t *testing.T) {
	h := newHarness(t)
	h.opts.HandlerDeadline = 5 * time.Second
	h.addNodes("amd64", map[string]string{"test-pool": "pc"}, nil, "pc-listed", "pc-missing", "pc-silent")
	h.start()
	h.create(validShim("pc", pool("pc"), maxUnavailable(intstr.FromInt32(3))))
	h.waitStates("pc", map[string]string{"pc-listed": ready, "pc-missing": ready, "pc-silent": ready}, budgetShort)
	for node, handlers := range map[string][]string{"pc-listed": {"runc", "pc"}, "pc-missing": {"runc"}} {
		var n corev1.Node
		if err := k8s.Get(h.ctx, client.ObjectKey{Name: node}, &n); err != nil {
			t.Fatal(err)
		}
		for _, hd := range handlers {
			n.Status.RuntimeHandlers = append(n.Status.RuntimeHandlers, corev1.NodeRuntimeHandler{Name: hd})
		}
		if err := k8s.Status().Update(h.ctx, &n); err != nil {
			t.Fatal(err)
		}
	}
	h.waitStates("pc", map[string]string{"pc-listed": ready, "pc-missing": failed, "pc-silent": ready}, minute)
	if msgs := h.events("pc", v1alpha1.ReasonHandlerNotReported, 1); len(msgs) != 1 || !strings.Contains(msgs[0], "pc-missing") {
		t.Errorf("HandlerNotReported events %q: want one for pc-missing", msgs)
	}
}

// TestInvalidOptionsHoldInstalls: on a cluster without wasmkube's admission policy (which refuses such
// options), option values the installer cannot write are refused by the manager with
// Degraded=InvalidSpec before any Job runs. Once the policy is back, the Shim can still be deleted: the
// policy checks only options that change.
func TestInvalidOptionsHoldInstalls(t *testing.T) {
	h := newHarness(t)
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "wasmkube-shim-options"}}
	if err := k8s.Get(h.ctx, client.ObjectKeyFromObject(binding), binding); err != nil {
		t.Fatal(err)
	}
	restore := func() error {
		binding.ResourceVersion, binding.UID = "", ""
		if err := k8s.Create(context.Background(), binding); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("restore the policy binding: %w", err)
		}
		return waitPolicyEnforced(h.ctx, true)
	}
	if err := k8s.Delete(h.ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
	if err := waitPolicyEnforced(h.ctx, false); err != nil {
		t.Fatalf("policy still enforced after its binding was deleted: %v", err)
	}
	h.addNodes("amd64", map[string]string{"test-pool": "inv"}, nil, "inv-0")
	h.start()
	h.create(validShim("inv", pool("inv"), func(s *v1alpha1.Shim) {
		s.Spec.Options = map[string]apiextensionsv1.JSON{"Nested": {Raw: []byte(`{"a":1}`)}}
	}))
	s := h.waitShim("inv", minute, func(s *v1alpha1.Shim) bool {
		c := condition(s, v1alpha1.ConditionDegraded)
		return c != nil && c.Reason == v1alpha1.ReasonInvalidSpec
	})
	if c := condition(s, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, "Nested") {
		t.Errorf("Degraded message %q does not name the option", c.Message)
	}
	var list batchv1.JobList
	if err := k8s.List(h.ctx, &list, client.InNamespace(h.ns)); err != nil || len(list.Items) != 0 {
		t.Errorf("%d Jobs (%v) for an invalid Shim, want none", len(list.Items), err)
	}

	if err := restore(); err != nil {
		t.Fatal(err)
	}
	h.update("inv", func(s *v1alpha1.Shim) { s.Labels = map[string]string{"touched": "yes"} })
	if err := k8s.Delete(h.ctx, s); err != nil {
		t.Fatal(err)
	}
	h.eventually("Shim inv deleted (its finalizer removed under the policy)", 30*time.Second, func(ctx context.Context) (bool, string, error) {
		err := k8s.Get(ctx, client.ObjectKey{Name: "inv"}, &v1alpha1.Shim{})
		return apierrors.IsNotFound(err), fmt.Sprint(err), client.IgnoreNotFound(err)
	})
}
