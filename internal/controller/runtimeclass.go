package controller

import (
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	nodev1ac "k8s.io/client-go/applyconfigurations/node/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// FieldOwner is the manager's server-side apply field manager.
const FieldOwner = "wasmkube-manager"

// desiredRuntimeClass is the RuntimeClass a Shim publishes: its handler, scheduling onto the nodes
// labelled shim.wasmkube.io/<shim>=ready with the Shim's tolerations, and its overhead; owned by the Shim.
func desiredRuntimeClass(shim *v1alpha1.Shim) *nodev1.RuntimeClass {
	rc := &nodev1.RuntimeClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:            rollout.RuntimeClassName(shim),
			Labels:          map[string]string{LabelManagedBy: ManagedByValue, LabelShim: shim.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(shim, v1alpha1.GroupVersion.WithKind("Shim"))},
		},
		Handler: rollout.Handler(shim),
		Scheduling: &nodev1.Scheduling{
			NodeSelector: map[string]string{v1alpha1.NodeStateLabel(shim.Name): string(v1alpha1.NodeReady)},
			Tolerations:  shim.Spec.RuntimeClass.Tolerations,
		},
	}
	if len(shim.Spec.RuntimeClass.Overhead) > 0 {
		rc.Overhead = &nodev1.Overhead{PodFixed: shim.Spec.RuntimeClass.Overhead}
	}
	return rc
}

// runtimeClassUpToDate reports whether current already has everything desired sets, so that no apply
// request is needed.
func runtimeClassUpToDate(current, desired *nodev1.RuntimeClass) bool {
	if current == nil || current.DeletionTimestamp != nil || current.Handler != desired.Handler ||
		!equality.Semantic.DeepEqual(current.OwnerReferences, desired.OwnerReferences) {
		return false
	}
	for k, v := range desired.Labels {
		if current.Labels[k] != v {
			return false
		}
	}
	if current.Scheduling == nil ||
		!equality.Semantic.DeepEqual(current.Scheduling.NodeSelector, desired.Scheduling.NodeSelector) ||
		len(current.Scheduling.Tolerations) != len(desired.Scheduling.Tolerations) ||
		(len(desired.Scheduling.Tolerations) > 0 && !equality.Semantic.DeepEqual(current.Scheduling.Tolerations, desired.Scheduling.Tolerations)) {
		return false
	}
	if desired.Overhead == nil {
		return current.Overhead == nil || len(current.Overhead.PodFixed) == 0
	}
	return current.Overhead != nil && equality.Semantic.DeepEqual(current.Overhead.PodFixed, desired.Overhead.PodFixed)
}

// runtimeClassApply converts desired to a server-side apply configuration.
func runtimeClassApply(desired *nodev1.RuntimeClass) *nodev1ac.RuntimeClassApplyConfiguration {
	ref := desired.OwnerReferences[0]
	sched := nodev1ac.Scheduling().WithNodeSelector(desired.Scheduling.NodeSelector)
	for _, t := range desired.Scheduling.Tolerations {
		tc := corev1ac.Toleration().WithKey(t.Key).WithOperator(t.Operator).WithValue(t.Value).WithEffect(t.Effect)
		if t.TolerationSeconds != nil {
			tc.WithTolerationSeconds(*t.TolerationSeconds)
		}
		sched.WithTolerations(tc)
	}
	ac := nodev1ac.RuntimeClass(desired.Name).
		WithLabels(desired.Labels).
		WithOwnerReferences(metav1ac.OwnerReference().WithAPIVersion(ref.APIVersion).WithKind(ref.Kind).
			WithName(ref.Name).WithUID(ref.UID).WithController(true).WithBlockOwnerDeletion(true)).
		WithHandler(desired.Handler).
		WithScheduling(sched)
	if desired.Overhead != nil {
		ac.WithOverhead(nodev1ac.Overhead().WithPodFixed(corev1.ResourceList(desired.Overhead.PodFixed)))
	}
	return ac
}
