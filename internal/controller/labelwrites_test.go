package controller

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// TestLabelWrites: a reconcile reads the labels it wrote until the node cache has them (the cache's
// resourceVersion reaches the write's), and the cache again from then on, even when someone else
// changed the label afterwards.
func TestLabelWrites(t *testing.T) {
	t.Parallel()
	cached := func(rv string) *cachedNode {
		return &cachedNode{ObjectMeta: metav1.ObjectMeta{Name: "n1", ResourceVersion: rv}}
	}
	var w labelWrites
	wrote := func(shim string, c rollout.Change, rv string) {
		w.done(shim, c.Node, w.begin(shim, c), rv, nil)
	}
	// A write the API server has not answered yet counts already; one that failed does not.
	token := w.begin("spin", rollout.Change{Node: "n1", State: v1alpha1.NodeReady, Hash: "h2"})
	if got, _, _ := w.labelView("spin", w.of("spin"), cached("500"), v1alpha1.NodeInstalling, "h1", ""); got != v1alpha1.NodeReady {
		t.Errorf("write in flight: state %q, want the write's (ready)", got)
	}
	w.done("spin", "n1", token, "", errors.New("boom"))
	if got, _, _ := w.labelView("spin", w.of("spin"), cached("99"), v1alpha1.NodeInstalling, "h1", ""); got != v1alpha1.NodeInstalling {
		t.Errorf("write failed: state %q, want the cache's (installing)", got)
	}
	// The end of an earlier write to the node does not touch a later one.
	first := w.begin("spin", rollout.Change{Node: "n1", State: ""})
	// The runtime annotation written with the label goes with it: a node repaired after a reboot is not
	// taken for rebooted again while the cache is older.
	const before, after = "containerd://2.4.2 boot=b1", "containerd://2.4.2 boot=b2"
	wrote("spin", rollout.Change{Node: "n1", State: v1alpha1.NodeReady, Hash: "h2", Runtime: after}, "100")
	w.done("spin", "n1", first, "", errors.New("boom"))
	for _, tc := range []struct {
		name, rv, cachedState, wantState, wantRuntime string
	}{
		{"the cache is older: the write", "99", "installing", "ready", after},
		{"another Shim's label is its own", "99", "installing", "installing", before},
		{"the cache shows the write: the cache", "100", "ready", "ready", before},
		{"the write is forgotten: the cache, even if older", "99", "installing", "installing", before},
	} {
		shim := "spin"
		if tc.name == "another Shim's label is its own" {
			shim = "wasmtime"
		}
		got, _, runtime := w.labelView(shim, w.of(shim), cached(tc.rv), v1alpha1.NodeState(tc.cachedState), "h1", before)
		if string(got) != tc.wantState || runtime != tc.wantRuntime {
			t.Errorf("%s: state %q runtime %q, want %q %q", tc.name, got, runtime, tc.wantState, tc.wantRuntime)
		}
	}

	// Someone else changed the label after the write: the newer cache wins.
	wrote("spin", rollout.Change{Node: "n1", State: v1alpha1.NodeFailed, Hash: "h2"}, "200")
	if got, _, _ := w.labelView("spin", w.of("spin"), cached("250"), "", "", ""); got != "" {
		t.Errorf("cache newer than the write: state %q, want the cache's (none)", got)
	}
	// A version that is not a number: the cache as it is.
	wrote("spin", rollout.Change{Node: "n1", State: v1alpha1.NodeReady}, "300")
	if got, _, _ := w.labelView("spin", w.of("spin"), cached("x"), v1alpha1.NodeInstalling, "", ""); got != v1alpha1.NodeInstalling {
		t.Errorf("unreadable cached version: state %q, want the cache's", got)
	}
	// Nodes that left the cluster, and Shims that are gone, are forgotten.
	wrote("spin", rollout.Change{Node: "gone", State: v1alpha1.NodeReady}, "400")
	wrote("wasmtime", rollout.Change{Node: "n1", State: v1alpha1.NodeReady}, "400")
	w.forget("spin", func(node string) bool { return node == "gone" })
	w.forget("wasmtime", nil)
	if len(w.byNode) != 0 {
		t.Errorf("left after forgetting: %v", w.byNode)
	}
}
