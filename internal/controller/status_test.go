package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

func TestComputeStatus(t *testing.T) {
	t.Parallel()
	type want struct{ ready, progressing, degraded string } // "Status/Reason"
	for name, tc := range map[string]struct {
		in   statusInput
		want want
	}{
		"no nodes": {
			in:   statusInput{},
			want: want{"True/NoNodesSelected", "False/RolloutComplete", "False/NoFailures"},
		},
		"rolling out with canary": {
			in:   statusInput{Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 3, Installing: 1}, InFlight: 1, Pending: 2, Canary: true}},
			want: want{"False/NodesNotReady", "True/RollingOut", "False/NoFailures"},
		},
		"all ready, one unsupported": {
			in:   statusInput{Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 3, Ready: 2, Unsupported: 1}}},
			want: want{"True/AllNodesReady", "False/RolloutComplete", "False/NoFailures"},
		},
		"failures within budget": {
			in:   statusInput{Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 3, Ready: 2, Failed: 1}, FailedNodes: []string{"n1"}}},
			want: want{"False/NodesNotReady", "False/RolloutComplete", "True/NodesFailed"},
		},
		"paused": {
			in: statusInput{MaxFailures: 1, Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 9, Failed: 2},
				Paused: true, Pending: 7, FailedNodes: []string{"a", "b"}}},
			want: want{"False/NodesNotReady", "False/RolloutPaused", "True/RolloutPaused"},
		},
		"uninstalling on deletion": {
			in:   statusInput{Deleting: true, Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Uninstalling: 2}, InFlight: 2}},
			want: want{"True/NoNodesSelected", "True/Uninstalling", "False/NoFailures"},
		},
		"invalid spec wins": {
			in:   statusInput{InvalidSpec: "bad option", SourceError: "x", Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 1}}},
			want: want{"False/NodesNotReady", "False/RolloutComplete", "True/InvalidSpec"},
		},
		"handler conflict": {
			in: statusInput{Conflict: &conflict{v1alpha1.ReasonHandlerConflict, "handler spin belongs to Shim spin"},
				Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 2}}},
			want: want{"False/HandlerConflict", "False/HandlerConflict", "True/HandlerConflict"},
		},
		"RuntimeClass conflict while an uninstall runs": {
			in: statusInput{Conflict: &conflict{v1alpha1.ReasonRuntimeClassConflict, "RuntimeClass x is not managed by wasmkube"},
				Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Uninstalling: 1}, InFlight: 1}},
			want: want{"False/RuntimeClassConflict", "True/RollingOut", "True/RuntimeClassConflict"},
		},
		"waiting for another Shim's operation": {
			in:   statusInput{Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 2}, Pending: 2, Waiting: 1}},
			want: want{"False/NodesNotReady", "True/RollingOut", "False/NoFailures"},
		},
		"unresolvable source": {
			in:   statusInput{SourceError: "registry down", Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 1}}},
			want: want{"False/NodesNotReady", "False/RolloutComplete", "True/SourceUnresolvable"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.in.Generation = 4
			st := computeStatus(v1alpha1.ShimStatus{}, tc.in)
			got := want{}
			for i, c := range st.Conditions {
				if c.ObservedGeneration != 4 {
					t.Errorf("condition %s observedGeneration %d", c.Type, c.ObservedGeneration)
				}
				v := string(c.Status) + "/" + c.Reason
				switch i {
				case 0:
					got.ready = v
				case 1:
					got.progressing = v
				case 2:
					got.degraded = v
				}
			}
			if got != tc.want || st.ObservedGeneration != 4 {
				t.Fatalf("conditions (Ready, Progressing, Degraded) = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestComputeStatusStable: recomputing an unchanged rollout yields an equal status (no write), and a
// condition's transition time moves only when its status changes.
func TestComputeStatusStable(t *testing.T) {
	t.Parallel()
	in := statusInput{Generation: 1, Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 2, Installing: 1}, InFlight: 1, Pending: 1}}
	first := computeStatus(v1alpha1.ShimStatus{}, in)
	for i := range first.Conditions {
		first.Conditions[i].LastTransitionTime = metav1.NewTime(time.Unix(1000, 0))
	}
	again := computeStatus(first, in)
	if len(again.Conditions) != 3 {
		t.Fatalf("conditions %+v", again.Conditions)
	}
	for i := range again.Conditions {
		if again.Conditions[i] != first.Conditions[i] {
			t.Fatalf("condition changed on an unchanged rollout: %+v -> %+v", first.Conditions[i], again.Conditions[i])
		}
	}
	in.Plan = rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 2, Ready: 2}}
	done := computeStatus(first, in)
	if done.Conditions[0].LastTransitionTime.Equal(&first.Conditions[0].LastTransitionTime) {
		t.Fatal("Ready went True but its transition time did not move")
	}
	if !done.Conditions[2].LastTransitionTime.Equal(&first.Conditions[2].LastTransitionTime) {
		t.Fatal("Degraded stayed False but its transition time moved")
	}
}

// TestProgressOnly: the rollout's progress (counts, wave size, messages) may wait for statusInterval;
// any other change of the status may not.
func TestProgressOnly(t *testing.T) {
	t.Parallel()
	in := statusInput{Generation: 1, SpecHash: "h1", MaxUnavailable: 10,
		Plan: rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 4, Installing: 1}, InFlight: 1, Pending: 3, Wave: 1}}
	base := computeStatus(v1alpha1.ShimStatus{}, in)
	for name, tc := range map[string]struct {
		mut  func(*statusInput)
		want bool
	}{
		"counts and wave": {func(in *statusInput) {
			in.Plan.Counts.Installing, in.Plan.Counts.Ready, in.Plan.Wave, in.Plan.InFlight, in.Plan.Pending = 2, 1, 2, 2, 1
		}, true},
		"a node failed":  {func(in *statusInput) { in.Plan.Counts.Failed, in.Plan.FailedNodes = 1, []string{"n1"} }, false},
		"all ready":      {func(in *statusInput) { in.Plan = rollout.Output{Counts: v1alpha1.NodeCounts{Selected: 4, Ready: 4}} }, false},
		"new spec":       {func(in *statusInput) { in.SpecHash = "h2" }, false},
		"new generation": {func(in *statusInput) { in.Generation = 2 }, false},
		"paused":         {func(in *statusInput) { in.Plan.Paused, in.Plan.Counts.Failed = true, 2 }, false},
	} {
		changed := in
		tc.mut(&changed)
		if got := progressOnly(base, computeStatus(base, changed)); got != tc.want {
			t.Errorf("%s: progressOnly = %t, want %t", name, got, tc.want)
		}
	}
}
