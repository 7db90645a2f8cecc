package controller

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// BenchmarkReconcilePlan measures what one reconcile of a Shim computes from the cache, observe and
// Plan, mid-rollout on 5,000 nodes: 2,000 ready, 500 installing (running Jobs and pods), 2,500 waiting.
func BenchmarkReconcilePlan(b *testing.B) {
	const nodes, ready, installing = 5000, 2000, 500
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "bench", UID: "u1"},
		Spec: v1alpha1.ShimSpec{RuntimeType: "io.containerd.wazero.v1", Source: v1alpha1.ShimSource{Builtin: "wazero"},
			NodeSelector: map[string]string{}}}
	hash := rollout.SpecHash(shim)
	s := &store{
		nodes: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{}),
		jobs: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc,
			toolscache.Indexers{indexShim: jobShim, indexActiveNode: activeJobNode}),
		pods: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{indexJobUID: podJobUID}),
	}
	label, annotation := v1alpha1.NodeStateLabel(shim.Name), v1alpha1.NodeHashAnnotation(shim.Name)
	for i := range nodes {
		name := fmt.Sprintf("node-%05d", i)
		n := &cachedNode{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1",
			Labels: map[string]string{"kubernetes.io/hostname": name, "pool": "bench"}}, OS: "linux", Arch: "amd64"}
		switch {
		case i < ready:
			n.Labels[label], n.Annotations = string(v1alpha1.NodeReady), map[string]string{annotation: hash}
		case i < ready+installing:
			n.Labels[label] = string(v1alpha1.NodeInstalling)
			uid := types.UID("job-" + name)
			must(b, s.jobs.Add(&cachedJob{ObjectMeta: metav1.ObjectMeta{Name: rollout.JobName(shim.Name, name, rollout.Install, hash),
				Namespace: "ns", UID: uid}, Shim: shim.Name, Operation: rollout.Install, SpecHash: hash, Node: name,
				StartTime: &metav1.Time{Time: time.Now()}}))
			must(b, s.pods.Add(&cachedPod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + name, Namespace: "ns"},
				Shim: shim.Name, JobUID: uid, Phase: corev1.PodRunning}))
		}
		must(b, s.nodes.Add(n))
	}
	// The ready nodes' finished Jobs are still cached (until their TTL).
	for i := range ready {
		name := fmt.Sprintf("node-%05d", i)
		must(b, s.jobs.Add(&cachedJob{ObjectMeta: metav1.ObjectMeta{Name: rollout.JobName(shim.Name, name, rollout.Install, hash),
			Namespace: "ns", UID: types.UID("job-" + name)}, Shim: shim.Name, Operation: rollout.Install, SpecHash: hash,
			Node: name, Done: &batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}))
	}
	r := &ShimReconciler{objects: s}
	reqs, err := rollout.ParseRequirements(shim)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		view, _, _ := r.observe(shim, hash, reqs)
		plan := rollout.Plan(rollout.Input{SpecHash: hash, PreviousHash: hash, Platforms: rollout.BuiltinPlatforms,
			MaxUnavailable: nodes, MaxFailures: 1, Wave: 600, Now: time.Now(), Nodes: view})
		if len(plan.Starts) != 100 {
			b.Fatalf("%d starts, want 100", len(plan.Starts))
		}
	}
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
