package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// refuseAnnotation makes the API server refuse (through refuseReadyPolicy) to label its node ready for
// the Shim "wr".
const refuseAnnotation = "test.wasmkube.io/refuse-ready"

// TestRefusedResultWriteIsRetried: the manager writes node labels while it goes on planning (see
// nodeWriter), counting each write before the API server has answered. Here the API server refuses to
// label one node ready (a real admission policy) while the rest of the rollout goes on: the node's
// install Job has succeeded, but its result is not recorded. The refused write must be forgotten, not
// taken as written: once the policy lets it through, the node turns ready with exactly one Installed
// Event, no node gets a second Job, and slow start never ran more nodes than the written results
// allowed. The positive control: every other node turns ready while the write is refused.
func TestRefusedResultWriteIsRetried(t *testing.T) {
	h := newHarness(t)
	refusePolicy(t, h)
	nodes := names("wr", 8)
	h.addNodes("amd64", map[string]string{"test-pool": "wr"}, map[string]string{refuseAnnotation: "true"}, "wr-refused")
	h.addNodes("amd64", map[string]string{"test-pool": "wr"}, nil, nodes...)
	h.start()
	tr := h.track("wr")
	h.create(validShim("wr", pool("wr"), maxUnavailable(intstr.FromString("100%"))))

	want := map[string]string{"wr-refused": installing}
	for _, n := range nodes {
		want[n] = ready
	}
	h.waitStates("wr", want, budgetRollup)
	// The refused node's Job has long succeeded; its label must still say installing, and no Event may
	// claim it installed.
	time.Sleep(2 * time.Second)
	states, _, err := h.nodeStates(h.ctx, "wr")
	if err != nil {
		t.Fatal(err)
	}
	if states["wr-refused"] != installing {
		t.Fatalf("wr-refused is %q while its ready label is refused, want installing", states["wr-refused"])
	}
	for _, msg := range h.events("wr", v1alpha1.ReasonInstalled, len(nodes)) {
		if strings.Contains(msg, "wr-refused") {
			t.Errorf("Installed Event %q for a node whose result was not written", msg)
		}
	}

	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null}}}`, refuseAnnotation))
	if err := k8s.Patch(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "wr-refused"}}, patch); err != nil {
		t.Fatal(err)
	}
	want["wr-refused"] = ready
	h.waitStates("wr", want, budgetRollup)
	got := 0
	for _, msg := range h.events("wr", v1alpha1.ReasonInstalled, len(nodes)+1) {
		if strings.Contains(msg, "wr-refused") {
			got++
		}
	}
	if got != 1 {
		t.Errorf("%d Installed Events for wr-refused, want exactly 1", got)
	}
	_, _, jobs := tr.snapshot()
	for _, n := range append(nodes, "wr-refused") {
		if jobs[n] != 1 {
			t.Errorf("node %s got %d install Jobs, want exactly 1", n, jobs[n])
		}
	}
	if v := tr.slowStartViolations(); len(v) > 0 {
		t.Errorf("more nodes in flight than slow start allows:\n%s", strings.Join(v, "\n"))
	}
}

// refusePolicy installs an admission policy that refuses to label a node ready for the Shim "wr" while
// the node has refuseAnnotation, and waits until the API server enforces it.
func refusePolicy(t *testing.T, h *harness) {
	t.Helper()
	label := v1alpha1.NodeStateLabel("wr")
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "test-refuse-ready"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
						Resources: []string{"nodes"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: fmt.Sprintf(`!(has(object.metadata.annotations) && %q in object.metadata.annotations) || `+
					`!(has(object.metadata.labels) && object.metadata.labels[?%q].orValue("") == "ready")`, refuseAnnotation, label),
				Message: "refused by the test",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-refuse-ready"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := k8s.Create(h.ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := k8s.Delete(context.Background(), o); err != nil {
				t.Error(err)
			}
		})
	}
	// Probe with a node of its own until the policy is enforced.
	probe := testNode("wr-probe", "amd64")
	probe.Annotations = map[string]string{refuseAnnotation: "true"}
	if err := k8s.Create(h.ctx, probe); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), probe) })
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"labels":{%q:"ready"}}}`, label))
	err := wait.PollUntilContextTimeout(h.ctx, 200*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		return k8s.Patch(ctx, probe.DeepCopy(), patch, client.DryRunAll) != nil, nil
	})
	if err != nil {
		t.Fatalf("the test's admission policy is not enforced: %v", err)
	}
}
