package controller

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/kwoktest"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// BenchmarkCacheFootprint reports the heap one cached object keeps (B/object): each iteration decodes
// the protobuf a watch delivers for an object shaped like the API server's (a finished installer Job,
// its succeeded pod, a KWOK node) and runs the cache's transform on it, and all results stay live.
// Run it with -benchtime=5000x to match the 5,000-node scale benchmark.
func BenchmarkCacheFootprint(b *testing.B) {
	job, pod, node := servedObjects(b)
	for _, c := range []struct {
		name      string
		wire      func() ([]byte, error)
		decode    func([]byte) (any, error)
		transform func(any) (any, error)
	}{
		{"node", node.Marshal, decodeInto[corev1.Node], slimNode},
		{"job", job.Marshal, decodeInto[batchv1.Job], slimJob},
		{"pod", pod.Marshal, decodeInto[corev1.Pod], slimPod},
	} {
		b.Run(c.name, func(b *testing.B) {
			wire, err := c.wire()
			if err != nil {
				b.Fatal(err)
			}
			kept := make([]any, 0, b.N)
			before := heapAlloc()
			for b.Loop() {
				obj, err := c.decode(wire)
				if err == nil {
					obj, err = c.transform(obj)
				}
				if err != nil {
					b.Fatal(err)
				}
				kept = append(kept, obj)
			}
			b.ReportMetric(float64(heapAlloc()-before-uint64(cap(kept))*16)/float64(len(kept)), "B/object")
			runtime.KeepAlive(kept)
		})
	}
}

func decodeInto[T any, P interface {
	*T
	Unmarshal([]byte) error
}](wire []byte) (any, error) {
	obj := P(new(T))
	return obj, obj.Unmarshal(wire)
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// servedObjects returns a finished installer Job, its succeeded pod and a Ready KWOK node with the
// fields the API server, the job controller and KWOK add.
func servedObjects(b *testing.B) (*batchv1.Job, *corev1.Pod, *corev1.Node) {
	b.Helper()
	node := kwoktest.Node("node-01234", "arm64", map[string]string{"pool": "bench"}, nil)
	served(&node.ObjectMeta, "node")
	for k, v := range map[string]string{"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": node.Name,
		"beta.kubernetes.io/arch": "arm64", "beta.kubernetes.io/os": "linux", "type": "kwok", "node.kubernetes.io/instance-type": "kwok"} {
		node.Labels[k] = v
	}
	node.Annotations["node.alpha.kubernetes.io/ttl"] = "0"
	// What wasmkube keeps on a node that runs one Shim: its state label, hash and runtime annotations.
	node.Labels[v1alpha1.NodeStateLabel("wazero")] = string(v1alpha1.NodeReady)
	node.Annotations[v1alpha1.NodeHashAnnotation("wazero")] = "5d41402abc4b2a76"
	node.Status.NodeInfo.BootID = "3f6b2c1e-8a4d-4e7f-9b1c-0d2e3f4a5b6c"
	node.Annotations[v1alpha1.NodeRuntimeAnnotation("wazero")] = rollout.RuntimeID(node.Status.NodeInfo.ContainerRuntimeVersion, node.Status.NodeInfo.BootID)
	node.Annotations["volumes.kubernetes.io/controller-managed-attach-detach"] = "true"
	for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable} {
		node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse,
			Reason: string(t) + "Reason", Message: "kubelet reports " + string(t), LastHeartbeatTime: now(), LastTransitionTime: now()})
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.12.34"}, {Type: corev1.NodeHostName, Address: node.Name}}
	node.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node.Status.Allocatable = node.Status.Capacity
	node.Status.NodeInfo.KubeletVersion, node.Status.NodeInfo.KernelVersion = "v1.37.2", "6.1.0"

	shim := validShim("wazero")
	shim.UID = types.UID("0f8c1a0e-3c1b-4f7e-9c55-2b1d8a6e4f10")
	job, err := BuildJob(DefaultJobConfig(), shim, node, rollout.Install, "5d41402abc4b2a76")
	if err != nil {
		b.Fatal(err)
	}
	job.Spec.Template.Spec.NodeName = node.Name
	served(&job.ObjectMeta, "job")
	job.Status = batchv1.JobStatus{StartTime: ptrTime(), CompletionTime: ptrTime(), Succeeded: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now(), LastTransitionTime: now()},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now(), LastTransitionTime: now()},
		}}

	pod := &corev1.Pod{ObjectMeta: *job.Spec.Template.ObjectMeta.DeepCopy(), Spec: *job.Spec.Template.Spec.DeepCopy()}
	pod.Name, pod.Namespace, pod.GenerateName = job.Name+"-x7k2p", job.Namespace, job.Name+"-"
	served(&pod.ObjectMeta, "pod")
	for k, v := range map[string]string{jobControllerUID: string(job.UID), "controller-uid": string(job.UID),
		"batch.kubernetes.io/job-name": job.Name, "job-name": job.Name} {
		pod.Labels[k] = v
	}
	pod.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))}
	pod.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, HostIP: "10.0.12.34", PodIP: "10.0.12.34", StartTime: ptrTime(),
		ContainerStatuses: []corev1.ContainerStatus{{Name: installerName, Image: DefaultJobConfig().Image, ImageID: "sha256:0123",
			ContainerID: "containerd://4f1e", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: now(), FinishedAt: now(),
				Message: `{"success":true,"changed":true,"restarted":true,"platform":"linux/arm64","distro":"containerd","durationMs":145,"runtimeType":"io.containerd.wazero.v1","handler":"wazero","steps":{"fetch":6,"config":2,"restart":130,"verify":1}}`}}}}}
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now()})
	}
	return job, pod, node
}

// served sets the metadata the API server adds, with a managed-fields entry per writer.
func served(m *metav1.ObjectMeta, kind string) {
	m.UID = types.UID(fmt.Sprintf("%s-7d3f2a1e-5b6c-4d8e-9f0a-1b2c3d4e5f60", kind))[:36]
	m.ResourceVersion, m.CreationTimestamp = "1234567", now()
	for _, mgr := range []string{"wasmkube-manager", "kube-controller-manager", "kwok"} {
		m.ManagedFields = append(m.ManagedFields, metav1.ManagedFieldsEntry{Manager: mgr, Operation: metav1.ManagedFieldsOperationUpdate,
			APIVersion: "v1", Time: ptrTime(), FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{".":{}}},"f:status":{"f:conditions":{}}}`)})
	}
}

func now() metav1.Time      { return metav1.NewTime(time.Unix(1795000000, 0)) }
func ptrTime() *metav1.Time { t := now(); return &t }
