package controller

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func testNode(name, arch string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
		OperatingSystem: "linux", Architecture: arch, ContainerRuntimeVersion: "containerd://2.4.2"}}}
}

// TestBuildJob compares the Jobs the manager creates with golden files: the node-installer contract
// (flags, privileges, host mount, tolerations, priority, termination message, bounds) in one place.
func TestBuildJob(t *testing.T) {
	t.Parallel()
	cfg := DefaultJobConfig()
	cfg.Image = "ghcr.io/wasmkube/node-installer:v0.1.0"
	cfg.Restart = "signal"
	oci := validShim("spin", func(s *v1alpha1.Shim) {
		s.UID = "0b5e3c1e-0000-4000-8000-000000000001"
		s.Spec.RuntimeType = "io.containerd.spin.v2"
		s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: "ghcr.io/spinkube/shim:v0.17.0",
			Path: "/containerd-shim-spin-v2", PullSecret: "ghcr"}}
		s.Spec.Options = map[string]apiextensionsv1.JSON{"SystemdCgroup": {Raw: []byte("true")}, "Mode": {Raw: []byte(`"fast"`)}}
	})
	http := validShim("wasmtime", func(s *v1alpha1.Shim) {
		s.UID = "0b5e3c1e-0000-4000-8000-000000000002"
		s.Spec.Handler = "wt"
		s.Spec.Source = v1alpha1.ShimSource{HTTP: &v1alpha1.HTTPSource{Platforms: []v1alpha1.HTTPArtifact{
			{Arch: "amd64", URL: "https://example.com/amd64.tgz", SHA256: sha},
			{Arch: "arm64", URL: "https://example.com/arm64.tgz", SHA256: sha}}}}
	})
	builtin := validShim("wazero", func(s *v1alpha1.Shim) { s.UID = "0b5e3c1e-0000-4000-8000-000000000003" })
	// A verify Job expires one interval after it finished (the Shim's, 30m here) and is retried once.
	verified := validShim("wazero", func(s *v1alpha1.Shim) {
		s.UID = "0b5e3c1e-0000-4000-8000-000000000003"
		s.Spec.Verify.Interval = &metav1.Duration{Duration: 30 * time.Minute}
	})
	ic, err := LoadInstallerConfig(filepath.Join("testdata", "installer-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	custom := cfg
	custom.Apply(ic)
	k3s := testNode("edge-1", "arm64")
	k3s.Labels = map[string]string{"wasmkube.io/distro": "k3s", "kubernetes.io/arch": "arm64"}
	for _, tc := range []struct {
		golden string
		cfg    *JobConfig
		shim   *v1alpha1.Shim
		node   *corev1.Node
		op     rollout.Operation
	}{
		{"job-install-oci.yaml", nil, oci, testNode("ip-10-0-0-1.ec2.internal", "amd64"), rollout.Install},
		{"job-install-http-arm64.yaml", nil, http, testNode("rpi-1", "arm64"), rollout.Install},
		{"job-install-builtin.yaml", nil, builtin, testNode("node-1", "amd64"), rollout.Install},
		{"job-uninstall.yaml", nil, oci, testNode("node-1", "amd64"), rollout.Uninstall},
		{"job-verify.yaml", nil, verified, testNode("node-1", "amd64"), rollout.Verify},
		// testdata/installer-config.yaml: tolerations, priority class and a k3s override.
		{"job-install-settings-override.yaml", &custom, builtin, k3s, rollout.Install},
		{"job-uninstall-settings-override.yaml", &custom, builtin, k3s, rollout.Uninstall},
		{"job-install-settings-no-match.yaml", &custom, builtin, testNode("node-1", "amd64"), rollout.Install},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			c := cfg
			if tc.cfg != nil {
				c = *tc.cfg
			}
			job, err := BuildJob(c, tc.shim, tc.node, tc.op, rollout.SpecHash(tc.shim))
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBuildJob -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from the golden file (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestBuildJobRefusesInvalidOptions(t *testing.T) {
	t.Parallel()
	s := validShim("x", func(s *v1alpha1.Shim) {
		s.Spec.Options = map[string]apiextensionsv1.JSON{"A": {Raw: []byte(`[1]`)}}
	})
	if _, err := BuildJob(DefaultJobConfig(), s, testNode("n", "amd64"), rollout.Install, "h"); err == nil {
		t.Fatal("BuildJob accepted a list option")
	}
}

func finishedJob(typ batchv1.JobConditionType, reason string, at time.Time) *batchv1.Job {
	start := metav1.NewTime(at.Add(-3 * time.Second))
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", UID: "u"},
		Status: batchv1.JobStatus{StartTime: &start, Conditions: []batchv1.JobCondition{
			{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: "msg", LastTransitionTime: metav1.NewTime(at)}}},
	}
}

func installerPod(phase corev1.PodPhase, message string, finished time.Time) *corev1.Pod {
	return &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{
		Name: installerName, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Message: message, FinishedAt: metav1.NewTime(finished)}}}}}}
}

func TestJobOutcome(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old := now.Add(-time.Minute)
	const ok = `{"operation":"install","success":true,"changed":true,"restarted":true,"platform":"linux/amd64","distro":"kind","durationMs":1500}`
	const noop = `{"operation":"install","success":true,"changed":false,"restarted":false,"durationMs":40}`
	const bad = `{"operation":"install","success":false,"rolledBack":true,"reason":"VerifyFailed","error":"handler missing","durationMs":900}`
	const unsupportedHost = `{"operation":"install","success":false,"reason":"UnsupportedHost","error":"talos node: nothing changed: read-only root","durationMs":40}`
	const busy = `{"operation":"install","success":false,"reason":"NodeBusy","error":"node busy: another node-installer operation held the node lock","durationMs":300000}`
	for name, tc := range map[string]struct {
		job      *batchv1.Job
		pods     []*corev1.Pod
		phase    rollout.JobPhase
		busy     bool
		ok       bool
		detail   string
		duration time.Duration
	}{
		"no job":   {job: nil, phase: rollout.JobNone, ok: true},
		"deleting": {job: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: now}}}, phase: rollout.JobNone, ok: true},
		"running":  {job: &batchv1.Job{}, phase: rollout.JobActive, ok: true},
		"pod succeeded before the Job is marked Complete": {job: &batchv1.Job{},
			pods:  []*corev1.Pod{installerPod(corev1.PodSucceeded, ok, now)},
			phase: rollout.JobSucceeded, ok: true, duration: 1500 * time.Millisecond,
			detail: "changed=true restarted=true platform=linux/amd64 distro=kind in 1.5s"},
		"pod failed while the Job may retry": {job: &batchv1.Job{},
			pods:  []*corev1.Pod{installerPod(corev1.PodFailed, bad, now)},
			phase: rollout.JobActive, ok: true},
		"success": {job: finishedJob(batchv1.JobComplete, "", now), pods: []*corev1.Pod{installerPod(corev1.PodSucceeded, ok, now)},
			phase: rollout.JobSucceeded, ok: true, duration: 1500 * time.Millisecond,
			detail: "changed=true restarted=true platform=linux/amd64 distro=kind in 1.5s"},
		"retried pod reports nothing to do": {
			job: finishedJob(batchv1.JobComplete, "", now),
			pods: []*corev1.Pod{installerPod(corev1.PodFailed, "", now.Add(-2*time.Second)),
				installerPod(corev1.PodSucceeded, noop, now)},
			phase: rollout.JobSucceeded, ok: true, duration: 40 * time.Millisecond,
			detail: "changed=false restarted=false platform= distro= in 40ms"},
		"installer failure": {job: finishedJob(batchv1.JobFailed, "BackoffLimitExceeded", now),
			pods:  []*corev1.Pod{installerPod(corev1.PodFailed, bad, now)},
			phase: rollout.JobFailed, ok: true, duration: 900 * time.Millisecond,
			detail: "VerifyFailed: handler missing (rolled back)"},
		"exit 0 but success=false": {job: finishedJob(batchv1.JobComplete, "", now),
			pods:  []*corev1.Pod{installerPod(corev1.PodSucceeded, bad, now)},
			phase: rollout.JobFailed, ok: true, duration: 900 * time.Millisecond,
			detail: "VerifyFailed: handler missing (rolled back)"},
		"unsupported host": {job: finishedJob(batchv1.JobComplete, "", now),
			pods:  []*corev1.Pod{installerPod(corev1.PodSucceeded, unsupportedHost, now)},
			phase: rollout.JobUnsupported, ok: true, duration: 40 * time.Millisecond,
			detail: "UnsupportedHost: talos node: nothing changed: read-only root"},
		"node lock held until the deadline": {job: finishedJob(batchv1.JobFailed, "BackoffLimitExceeded", now),
			pods:  []*corev1.Pod{installerPod(corev1.PodFailed, busy, now)},
			phase: rollout.JobFailed, busy: true, ok: true, duration: 300 * time.Second,
			detail: "NodeBusy: node busy: another node-installer operation held the node lock"},
		"deadline without a result": {job: finishedJob(batchv1.JobFailed, "DeadlineExceeded", old),
			phase: rollout.JobFailed, ok: true, duration: 3 * time.Second, detail: "DeadlineExceeded: msg"},
		"result not cached yet": {job: finishedJob(batchv1.JobComplete, "", now),
			phase: rollout.JobSucceeded, ok: false, duration: 3 * time.Second},
		"logs instead of JSON": {job: finishedJob(batchv1.JobFailed, "BackoffLimitExceeded", now),
			pods:  []*corev1.Pod{installerPod(corev1.PodFailed, "panic: boom", now)},
			phase: rollout.JobFailed, ok: true, duration: 3 * time.Second,
			detail: "BackoffLimitExceeded: msg (unreadable installer result: panic: boom)"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var job *cachedJob
			if tc.job != nil {
				job = cached[cachedJob](t, slimJob, tc.job)
			}
			pods := make([]*cachedPod, 0, len(tc.pods))
			for _, p := range tc.pods {
				pods = append(pods, cached[cachedPod](t, slimPod, p))
			}
			o, ok := jobOutcome(job, pods)
			if o.Phase != tc.phase || o.Busy != tc.busy || ok != tc.ok || o.Detail != tc.detail || o.Duration != tc.duration {
				t.Fatalf("jobOutcome = %+v, %v; want phase %v busy %v ok %v detail %q duration %s", o, ok, tc.phase, tc.busy, tc.ok, tc.detail, tc.duration)
			}
		})
	}
}

// cached runs a cache transform on obj and returns its record.
func cached[T any](t *testing.T, transform func(any) (any, error), obj any) *T {
	t.Helper()
	out, err := transform(obj)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := out.(*T)
	if !ok {
		t.Fatalf("transform of %T gave %T", obj, out)
	}
	return rec
}
