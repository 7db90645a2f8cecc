package controller

import (
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

func TestRuntimeClassUpToDate(t *testing.T) {
	t.Parallel()
	shim := validShim("spin", func(s *v1alpha1.Shim) {
		s.UID = "u1"
		s.Spec.RuntimeClass.Tolerations = []corev1.Toleration{{Key: "wasm", Operator: corev1.TolerationOpExists}}
	})
	desired := desiredRuntimeClass(shim)
	if desired.Name != "spin" || desired.Handler != "spin" || desired.Scheduling.NodeSelector[v1alpha1.NodeStateLabel("spin")] != "ready" {
		t.Fatalf("desired RuntimeClass %+v", desired)
	}
	for name, tc := range map[string]struct {
		mut  func(*nodev1.RuntimeClass)
		want bool
	}{
		"equal":               {func(*nodev1.RuntimeClass) {}, true},
		"extra label is fine": {func(rc *nodev1.RuntimeClass) { rc.Labels["team"] = "x" }, true},
		"selector edited":     {func(rc *nodev1.RuntimeClass) { rc.Scheduling.NodeSelector = map[string]string{"a": "b"} }, false},
		"tolerations dropped": {func(rc *nodev1.RuntimeClass) { rc.Scheduling.Tolerations = nil }, false},
		"overhead added": {func(rc *nodev1.RuntimeClass) {
			rc.Overhead = &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
		}, false},
		"owner missing":        {func(rc *nodev1.RuntimeClass) { rc.OwnerReferences = nil }, false},
		"scheduling missing":   {func(rc *nodev1.RuntimeClass) { rc.Scheduling = nil }, false},
		"managed label edited": {func(rc *nodev1.RuntimeClass) { rc.Labels[LabelShim] = "other" }, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			current := desiredRuntimeClass(shim)
			tc.mut(current)
			if got := runtimeClassUpToDate(current, desired); got != tc.want {
				t.Fatalf("runtimeClassUpToDate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSlimNode(t *testing.T) {
	t.Parallel()
	n := &corev1.Node{}
	n.Name, n.Labels = "n", map[string]string{"a": "b"}
	n.Annotations = map[string]string{"c": "d", v1alpha1.EnabledAnnotation: "true", v1alpha1.NodeHashAnnotation("s"): "h"}
	n.Status.NodeInfo = corev1.NodeSystemInfo{Architecture: "arm64", OperatingSystem: "linux", KernelVersion: "6.1", ContainerRuntimeVersion: "containerd://2.1.4"}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"big"}}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady}}
	n.Status.RuntimeHandlers = []corev1.NodeRuntimeHandler{{Name: "spin"}}
	out, err := slimNode(n)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*cachedNode)
	if s.Name != "n" || s.Labels["a"] != "b" || len(s.Annotations) != 2 ||
		s.Annotations[v1alpha1.EnabledAnnotation] != "true" || s.Annotations[v1alpha1.NodeHashAnnotation("s")] != "h" ||
		s.Arch != "arm64" || s.OS != "linux" || !slices.Equal(s.Handlers, []string{"spin"}) {
		t.Fatalf("slimNode kept the wrong fields: %+v", s)
	}
	back := s.node()
	if back.Name != "n" || back.Labels["a"] != "b" || back.Status.NodeInfo.Architecture != "arm64" || back.Status.NodeInfo.OperatingSystem != "linux" ||
		back.Status.NodeInfo.ContainerRuntimeVersion != "containerd://2.1.4" {
		t.Fatalf("cachedNode.node() = %+v", back)
	}
}

func TestSlimJobAndPod(t *testing.T) {
	t.Parallel()
	job, err := BuildJob(DefaultJobConfig(), validShim("s"), testNode("n1", "amd64"), "install", "h")
	if err != nil {
		t.Fatal(err)
	}
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	j := cached[cachedJob](t, slimJob, job)
	if j.Name != job.Name || j.Shim != "s" || j.Operation != rollout.Install || j.SpecHash != "h" || j.Labels != nil || j.Node != "n1" ||
		j.Done == nil || j.Done.Type != batchv1.JobComplete {
		t.Fatalf("slimJob = %+v", j)
	}
	pod := installerPod(corev1.PodSucceeded, "{}", time.Now())
	pod.Labels = map[string]string{jobControllerUID: "u"}
	pod.Spec.Containers = []corev1.Container{{Name: installerName, Image: "big"}}
	p := cached[cachedPod](t, slimPod, pod)
	if p.JobUID != "u" || p.Labels != nil || p.Phase != corev1.PodSucceeded || p.Installer == nil {
		t.Fatalf("slimPod = %+v", p)
	}
	if msg, ok := terminationMessage([]*cachedPod{p}, true); !ok || msg != "{}" {
		t.Fatalf("termination message lost: %q %v", msg, ok)
	}
}
