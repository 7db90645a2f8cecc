package controller

import (
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// The manager keeps every Node, and one installer Job and one pod per node, in its cache. A decoded
// corev1.Node, batchv1.Job or corev1.Pod is most of a kilobyte before any field is set, so the cache's
// transforms (slimNode, slimJob, slimPod) store these records instead: only what the controller reads
// (see BenchmarkCacheFootprint). They satisfy client.Object, so the informers' event handlers take them as
// they are; nothing reads them through the cached client, which would expect the API types.

// cachedNode is the cache's record of a Node.
type cachedNode struct {
	metav1.TypeMeta
	// ObjectMeta keeps name, UID, resourceVersion, deletionTimestamp, the labels (any of them may
	// select the node) and the annotations the controller reads (see ourAnnotations).
	metav1.ObjectMeta
	// OS and Arch are the node's status.nodeInfo operatingSystem and architecture as nodePlatform
	// normalizes them; RuntimeVersion and BootID are its containerRuntimeVersion and bootID (the two
	// tell a containerd upgrade or a reboot).
	OS, Arch, RuntimeVersion, BootID string
	// Handlers names the runtime handlers the kubelet reports in status.runtimeHandlers.
	Handlers []string
}

// DeepCopyObject implements runtime.Object.
func (n *cachedNode) DeepCopyObject() runtime.Object {
	out := *n
	n.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Handlers = slices.Clone(n.Handlers)
	return &out
}

// node returns the Node the record was made from, as far as the record keeps it: enough to build the
// node's Job and to name it in an Event. It shares the record's maps: read it, never modify it.
func (n *cachedNode) node() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, Labels: n.Labels, Annotations: n.Annotations},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem: n.OS, Architecture: n.Arch, ContainerRuntimeVersion: n.RuntimeVersion, BootID: n.BootID,
		}},
	}
}

// cachedJob is the cache's record of an installer Job.
type cachedJob struct {
	metav1.TypeMeta
	// ObjectMeta keeps name, namespace, UID, resourceVersion and deletionTimestamp. The labels are not
	// kept: a map costs a few hundred bytes even for two entries, so the ones read are fields.
	metav1.ObjectMeta
	// Shim, Operation and SpecHash are the Job's LabelShim, LabelOperation and LabelSpecHash; Repair is
	// its LabelRepair.
	Shim      string
	Operation rollout.Operation
	SpecHash  string
	Repair    bool
	// Node is the node the Job's pod is pinned to.
	Node string
	// StartTime is when the job controller started the Job.
	StartTime *metav1.Time
	// Done is the Job's Complete or Failed condition; nil while it runs.
	Done *batchv1.JobCondition
}

// DeepCopyObject implements runtime.Object.
func (j *cachedJob) DeepCopyObject() runtime.Object {
	out := *j
	j.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.StartTime = j.StartTime.DeepCopy()
	if j.Done != nil {
		out.Done = j.Done.DeepCopy()
	}
	return &out
}

// cachedPod is the cache's record of an installer pod.
type cachedPod struct {
	metav1.TypeMeta
	// ObjectMeta keeps name, namespace, UID, resourceVersion and deletionTimestamp (see cachedJob).
	metav1.ObjectMeta
	// Shim and JobUID are the pod's LabelShim and its Job's UID (the job controller's label).
	Shim   string
	JobUID types.UID
	Phase  corev1.PodPhase
	// Installer is the installer container's terminated state; nil until it exits.
	Installer *corev1.ContainerStateTerminated
}

// DeepCopyObject implements runtime.Object.
func (p *cachedPod) DeepCopyObject() runtime.Object {
	out := *p
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if p.Installer != nil {
		out.Installer = p.Installer.DeepCopy()
	}
	return &out
}

// cachedMeta is the metadata a cached record keeps.
func cachedMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp}
}

// slimNode turns a Node into its cachedNode.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	meta := cachedMeta(&n.ObjectMeta)
	meta.Labels, meta.Annotations = n.Labels, ourAnnotations(n.Annotations)
	p := nodePlatform(n.Status.NodeInfo.OperatingSystem, n.Status.NodeInfo.Architecture)
	out := &cachedNode{ObjectMeta: meta, OS: p.OS, Arch: p.Arch,
		RuntimeVersion: n.Status.NodeInfo.ContainerRuntimeVersion, BootID: n.Status.NodeInfo.BootID}
	if len(n.Status.RuntimeHandlers) > 0 {
		out.Handlers = make([]string, len(n.Status.RuntimeHandlers))
		for i, h := range n.Status.RuntimeHandlers {
			out.Handlers[i] = h.Name
		}
	}
	return out, nil
}

// ourAnnotations keeps the node annotations the controller reads: the opt-in annotation and the Shims'
// hash annotations. Nodes carry many other, sometimes large, annotations (CNI, CSI, cloud providers).
func ourAnnotations(in map[string]string) map[string]string {
	var out map[string]string
	for k, v := range in {
		if k == v1alpha1.EnabledAnnotation || strings.HasPrefix(k, v1alpha1.NodeLabelPrefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// slimJob turns a Job into its cachedJob.
func slimJob(obj any) (any, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return obj, nil
	}
	out := &cachedJob{
		ObjectMeta: cachedMeta(&j.ObjectMeta),
		Shim:       j.Labels[LabelShim], Operation: rollout.Operation(j.Labels[LabelOperation]), SpecHash: j.Labels[LabelSpecHash],
		Repair:    j.Labels[LabelRepair] == "true",
		Node:      j.Spec.Template.Spec.NodeName,
		StartTime: j.Status.StartTime,
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			out.Done = &c // a copy: the other conditions are not kept
		}
	}
	return out, nil
}

// slimPod turns an installer pod into its cachedPod.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &cachedPod{
		ObjectMeta: cachedMeta(&p.ObjectMeta),
		Shim:       p.Labels[LabelShim], JobUID: types.UID(p.Labels[jobControllerUID]),
		Phase: p.Status.Phase,
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == installerName {
			out.Installer = cs.State.Terminated
		}
	}
	return out, nil
}
