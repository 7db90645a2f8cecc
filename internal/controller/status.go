package controller

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// statusInput is what a reconcile learned, beyond the plan, for the Shim's status.
type statusInput struct {
	Generation       int64
	SpecHash         string
	RuntimeClassName string
	Deleting         bool
	MaxFailures      int
	// MaxUnavailable is the resolved spec.rollout.maxUnavailable.
	MaxUnavailable int
	Plan           rollout.Output
	// InvalidSpec, SourceError and RuntimeClassError describe problems that make the Shim Degraded.
	InvalidSpec, SourceError, RuntimeClassError string
	// Conflict is set when another Shim (or a RuntimeClass wasmkube does not manage) holds the Shim's
	// handler or RuntimeClass name: nothing is installed for it.
	Conflict *conflict
}

// computeStatus returns the Shim's new status. Conditions keep their LastTransitionTime unless their
// status changes, so an unchanged rollout computes an equal status and costs no write.
func computeStatus(old v1alpha1.ShimStatus, in statusInput) v1alpha1.ShimStatus {
	st := *old.DeepCopy()
	st.ObservedGeneration = in.Generation
	st.SpecHash = in.SpecHash
	st.RuntimeClassName = in.RuntimeClassName
	st.Nodes = in.Plan.Counts
	st.Rollout = v1alpha1.RolloutStatus{MaxUnavailable: int32(in.MaxUnavailable), WaveSize: int32(in.Plan.Wave)}
	c := in.Plan.Counts
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: in.Generation})
	}

	supported := c.Selected - c.Unsupported
	switch {
	case in.Conflict != nil:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, in.Conflict.reason, in.Conflict.message)
	case c.Selected == 0:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonNoNodesSelected, "the Shim selects no node")
	case c.Ready == supported:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAllNodesReady,
			fmt.Sprintf("%d of %d selected nodes ready (%d unsupported)", c.Ready, c.Selected, c.Unsupported))
	default:
		msg := fmt.Sprintf("%d of %d supported nodes ready", c.Ready, supported)
		if c.Drifted > 0 {
			msg += fmt.Sprintf(" (%d drifted, being reinstalled)", c.Drifted)
		}
		set(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNodesNotReady, msg)
	}

	progress := fmt.Sprintf("%d installing, %d uninstalling, %d waiting; wave of %d nodes (maxUnavailable %d)",
		c.Installing, c.Uninstalling, in.Plan.Pending, in.Plan.Wave, in.MaxUnavailable)
	if in.Plan.Waiting > 0 {
		progress += fmt.Sprintf(" (%d for another Shim's operation on the node)", in.Plan.Waiting)
	}
	switch {
	case in.Conflict != nil && in.Plan.InFlight == 0:
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, in.Conflict.reason, "nothing is installed: "+in.Conflict.message)
	case in.Plan.Paused:
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonRolloutPaused, progress)
	case in.Plan.InFlight > 0 || in.Plan.Pending > 0:
		reason := v1alpha1.ReasonRollingOut
		if in.Deleting {
			reason = v1alpha1.ReasonUninstalling
		}
		if in.Plan.Canary {
			progress += " (canary: one node until the first succeeds)"
		}
		set(v1alpha1.ConditionProgressing, metav1.ConditionTrue, reason, progress)
	default:
		set(v1alpha1.ConditionProgressing, metav1.ConditionFalse, v1alpha1.ReasonRolloutComplete, "no Job is running or waiting")
	}

	failedList := strings.Join(in.Plan.FailedNodes, ", ")
	if int(c.Failed) > len(in.Plan.FailedNodes) {
		failedList += ", ..."
	}
	switch {
	case in.InvalidSpec != "":
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, in.InvalidSpec)
	case in.Conflict != nil:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, in.Conflict.reason, in.Conflict.message)
	case in.SourceError != "":
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonSourceUnresolvable, in.SourceError)
	case in.RuntimeClassError != "":
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRuntimeClassFailed, in.RuntimeClassError)
	case in.Plan.Paused:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonRolloutPaused,
			fmt.Sprintf("rollout paused: %d nodes failed (%s), more than maxFailures %d; fix the cause and change the Shim (or remove the node label shim.wasmkube.io/<shim>) to retry",
				c.Failed, failedList, in.MaxFailures))
	case c.Failed > 0:
		set(v1alpha1.ConditionDegraded, metav1.ConditionTrue, v1alpha1.ReasonNodesFailed,
			fmt.Sprintf("%d nodes failed (%s)", c.Failed, failedList))
	default:
		set(v1alpha1.ConditionDegraded, metav1.ConditionFalse, v1alpha1.ReasonNoFailures, "no node failed")
	}
	sortConditions(st.Conditions)
	return st
}

// progressOnly reports whether two statuses differ only in the rollout's progress: node counts, wave
// size and condition messages (see statusInterval).
func progressOnly(a, b v1alpha1.ShimStatus) bool {
	strip := func(s v1alpha1.ShimStatus) v1alpha1.ShimStatus {
		s = *s.DeepCopy()
		s.Nodes, s.Rollout = v1alpha1.NodeCounts{}, v1alpha1.RolloutStatus{}
		for i := range s.Conditions {
			s.Conditions[i].Message = ""
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// sortConditions keeps Ready, Progressing, Degraded in that order.
func sortConditions(cs []metav1.Condition) {
	rank := map[string]int{v1alpha1.ConditionReady: 0, v1alpha1.ConditionProgressing: 1, v1alpha1.ConditionDegraded: 2}
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && rank[cs[j].Type] < rank[cs[j-1].Type]; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}
