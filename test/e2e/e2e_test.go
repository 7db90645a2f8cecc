package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/test/cluster"
)

const (
	shim       = "wazero"
	wasmImage  = Registry + "/wasm-guest:" + Tag
	plainImage = Registry + "/plain-guest:" + Tag
	waitLong   = 4 * time.Minute
	ns         = "default"
	// LoadEnv holds the command that loads an image tarball into an existing cluster's node, e.g.
	// "kind load image-archive --name wasmkube-e2e"; the tarball's path is appended.
	LoadEnv = "WASMKUBE_E2E_LOAD"
	// ExistingEnv=1 runs the test on the cluster KUBECONFIG names instead of a local cluster of its
	// own; the test installs wasmkube there and annotates a node, so an ordinary KUBECONFIG is ignored.
	ExistingEnv = "WASMKUBE_E2E_EXISTING_CLUSTER"
)

// env is the cluster under test and what the test knows about its node.
type env struct {
	client     kubernetes.Interface
	dyn        dynamic.Interface
	kubeconfig string
	node       string
	// local is the cluster the test started; nil on an existing cluster (KUBECONFIG).
	local *cluster.Cluster
}

func TestE2E(t *testing.T) {
	helm := testenv.Path(t, testenv.EnvHelm)
	testenv.LocalClusterLock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	e := setup(t, ctx)

	out, err := Helm(ctx, helm, e.kubeconfig, "version", "--short")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm %s", strings.TrimSpace(out))
	mod, err := ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(mod, "charts", "wasmkube")
	var overrides *Overrides
	if e.local != nil {
		overrides = LocalOverrides(e.local.Layout())
	}
	// A short handler deadline: the kubelet lists a new handler within about 10 s here (more when the
	// machine is loaded), and a handler that disappears soon after an install is found out only after it.
	const handlerDeadline = 30 * time.Second
	install := append(InstallArgs(chart, overrides), "--set", "manager.handlerDeadline="+handlerDeadline.String())
	// The node's containerd config before wasmkube: what a plain helm uninstall must leave.
	pristine := e.readConfig(t)
	if _, err := Helm(ctx, helm, e.kubeconfig, install...); err != nil {
		t.Fatal(err)
	}
	uninstalled := false
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpDiagnostics(t)
		}
		if uninstalled {
			return
		}
		// The manager must outlive the Shims: their finalizers wait for its uninstall Jobs.
		ctx := context.Background()
		shims := e.dyn.Resource(v1alpha1.GroupVersion.WithResource("shims"))
		if err := shims.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			t.Logf("delete Shims: %v", err)
		}
		if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
			l, err := shims.List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0, nil
		}); err != nil {
			t.Errorf("Shims left after %s: %v", waitLong, err)
		}
		if _, err := Helm(ctx, helm, e.kubeconfig, "uninstall", Release, "--namespace", Namespace, "--wait", "--timeout", "2m"); err != nil {
			t.Error(err)
		}
	})
	if err := WaitManager(ctx, e.client, waitLong); err != nil {
		t.Fatal(err)
	}

	before := e.readConfig(t)
	start := time.Now()
	e.annotate(t, ctx, "true")
	e.waitLabel(t, ctx, shim, string(v1alpha1.NodeReady))
	t.Logf("FIGURE annotate -> %s=ready: %s", v1alpha1.NodeStateLabel(shim), time.Since(start).Round(time.Millisecond))
	if _, err := e.client.NodeV1().RuntimeClasses().Get(ctx, shim, metav1.GetOptions{}); err != nil {
		t.Fatalf("RuntimeClass %s: %v", shim, err)
	}
	e.waitHandler(t, ctx, true)

	// A Wasm pod and a plain pod side by side.
	wasmStart := e.runPod(t, ctx, "wasm-hello", wasmImage, shim, "hello", "e2e")
	plainStart := e.runPod(t, ctx, "plain-hello", plainImage, "", "hello", "e2e")
	t.Logf("FIGURE pod start (create -> container started in the pod status): wasm %s, plain %s",
		wasmStart.Round(time.Millisecond), plainStart.Round(time.Millisecond))
	for _, pod := range []string{"wasm-hello", "plain-hello"} {
		logs := e.waitLogs(t, ctx, pod, `argv=["`)
		if !strings.Contains(logs, `"hello" "e2e"`) {
			t.Errorf("pod %s logs %q, want the guest's hello line with its arguments", pod, logs)
		}
	}
	e.runJob(t, ctx)

	// A long-running Wasm pod that must survive the upgrade.
	e.runPod(t, ctx, "wasm-sleep", wasmImage, shim, "sleep")
	e.waitLogs(t, ctx, "wasm-sleep", "sleeping")
	sleeper := e.pod(t, ctx, "wasm-sleep")

	// Upgrade: a changed option re-installs the shim on the node.
	hash := e.nodeAnnotation(t, ctx, v1alpha1.NodeHashAnnotation(shim))
	upgrade := append(slices.Clone(install), "--set", "shims.wazero.spec.options.CacheDir=/var/lib/wasmkube/e2e-cache")
	if _, err := Helm(ctx, helm, e.kubeconfig, upgrade...); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return n.Annotations[v1alpha1.NodeHashAnnotation(shim)] != hash && n.Labels[v1alpha1.NodeStateLabel(shim)] == string(v1alpha1.NodeReady), nil
	}); err != nil {
		t.Fatalf("wait for the re-install after an options change (hash %s): %v", hash, err)
	}
	t.Logf("FIGURE upgrade -> ready again: %s", time.Since(start).Round(time.Millisecond))
	upgraded := time.Now()
	e.waitHandler(t, ctx, true)
	if cfg := e.readConfig(t); e.local != nil && !strings.Contains(cfg, "e2e-cache") {
		t.Errorf("containerd config after the upgrade does not name the new CacheDir:\n%s", cfg)
	}
	if p := e.pod(t, ctx, "wasm-sleep"); p.Status.Phase != corev1.PodRunning || p.UID != sleeper.UID ||
		restarts(p) != restarts(sleeper) {
		t.Errorf("the Wasm pod did not keep running through the upgrade: phase %s, restarts %d -> %d, containers %+v",
			p.Status.Phase, restarts(sleeper), restarts(p), p.Status.ContainerStatuses)
	}
	e.runPod(t, ctx, "wasm-after", wasmImage, shim, "hello", "after")
	e.waitLogs(t, ctx, "wasm-after", `"after"`)

	// An arch-limited Shim: unsupported on this node, nothing changed.
	e.archLimited(t, ctx)

	// Drift: containerd gets its config from before wasmkube back and restarts, as on a re-imaged node.
	e.driftAndHeal(t, ctx, before, upgraded.Add(handlerDeadline))

	// Opt out: config byte-identical to the copy taken before annotating, label and handler gone.
	e.deletePods(t, ctx)
	e.annotate(t, ctx, "false")
	e.waitLabel(t, ctx, shim, "")
	if after := e.readConfig(t); after != before {
		t.Errorf("containerd config after opting out differs from the one before annotating:\n--- before\n%s\n--- after\n%s", before, after)
	}
	e.waitHandler(t, ctx, false)

	// Deleting the Shim removes its RuntimeClass.
	if _, err := Helm(ctx, helm, e.kubeconfig, append(slices.Clone(install), "--set", "shims.wazero.enabled=false")...); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		_, err := e.client.NodeV1().RuntimeClasses().Get(ctx, shim, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Errorf("RuntimeClass %s still present after the Shim was removed: %v", shim, err)
	}

	// A plain helm uninstall with the shim installed: its pre-delete hook has the manager uninstall the
	// Shims first, so the node's config is byte for byte what it was before helm install.
	if _, err := Helm(ctx, helm, e.kubeconfig, install...); err != nil {
		t.Fatal(err)
	}
	e.annotate(t, ctx, "true")
	e.waitLabel(t, ctx, shim, string(v1alpha1.NodeReady))
	start = time.Now()
	if out, err := Helm(ctx, helm, e.kubeconfig, "uninstall", Release, "--namespace", Namespace); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("helm uninstall:\n%s", out)
	}
	uninstalled = true
	t.Logf("FIGURE helm uninstall (pre-delete hook uninstalling the Shims from the node): %s", time.Since(start).Round(time.Millisecond))
	if after := e.readConfig(t); after != pristine {
		t.Errorf("containerd config after helm uninstall differs from the one before helm install:\n--- before\n%s\n--- after\n%s", pristine, after)
	}
	if l, err := e.dyn.Resource(v1alpha1.GroupVersion.WithResource("shims")).List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("Shims left after helm uninstall: %v (%v)", l, err)
	}
	if v := e.nodeLabel(t, ctx, v1alpha1.NodeStateLabel(shim)); v != "" {
		t.Errorf("node still labelled %s=%s after helm uninstall", v1alpha1.NodeStateLabel(shim), v)
	}
	e.waitHandler(t, ctx, false)
}

// setup starts a local cluster, or uses the one KUBECONFIG names, and makes the test images available.
func setup(t *testing.T, ctx context.Context) *env {
	t.Helper()
	guest, err := wazeroguest.BuildTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	native, err := wazeroguest.BuildNativeTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tarballs := map[string]string{wasmImage: filepath.Join(t.TempDir(), "wasm.tar"), plainImage: filepath.Join(t.TempDir(), "plain.tar")}
	if err := containerdtest.ImageTarball(guest, "app.wasm", wasmImage, tarballs[wasmImage]); err != nil {
		t.Fatal(err)
	}
	if err := containerdtest.ImageTarball(native, "guest", plainImage, tarballs[plainImage]); err != nil {
		t.Fatal(err)
	}

	e := &env{}
	if kc := os.Getenv("KUBECONFIG"); kc != "" && os.Getenv(ExistingEnv) == "1" {
		// An existing cluster (test/kind/run.sh): its node holds wasmkube's images; the test's own
		// images are loaded with the command in LoadEnv, the tarball appended.
		if load := strings.Fields(os.Getenv(LoadEnv)); len(load) > 0 {
			for ref, tb := range tarballs {
				if out, err := exec.CommandContext(ctx, load[0], append(load[1:], tb)...).CombinedOutput(); err != nil {
					t.Fatalf("load %s with %s: %v\n%s", ref, LoadEnv, err, out)
				}
			}
		}
		e.kubeconfig = kc
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			t.Fatalf("load KUBECONFIG %s: %v", kc, err)
		}
		e.clients(t, cfg)
		nodes, err := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			t.Fatalf("list the nodes of %s: %v (%d nodes)", kc, err, len(nodes.Items))
		}
		e.node = nodes.Items[0].Name
		return e
	}

	mod, err := ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{Binaries: cluster.Binaries{
		KubeDir: testenv.Path(t, testenv.EnvKubeDir), Etcd: testenv.Path(t, testenv.EnvEtcd),
		ContainerdDir: testenv.Containerd2Dir(t), Runc: testenv.Runc(t), CNIDir: testenv.CNIDir(t),
	}, CacheDir: filepath.Join(testenv.Path(t, testenv.EnvCacheDir), "testbin"), Progress: logWriter{t}}
	built, err := BuildImages(ctx, mod, t.TempDir(), logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WorkDir, err = os.MkdirTemp("/tmp", "wke"); err != nil {
		t.Fatal(err)
	}
	// Down removes the work directory; an empty one is left only when Up failed early.
	t.Cleanup(func() { _ = os.Remove(cfg.WorkDir) })
	upCtx, upCancel := context.WithTimeout(ctx, 4*time.Minute)
	c, err := cluster.Up(upCtx, cfg)
	upCancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Down(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for ref, tb := range built {
		tarballs[ref] = tb
	}
	for ref, tb := range tarballs {
		if err := c.ImportImage(ctx, tb); err != nil {
			t.Fatalf("import %s: %v", ref, err)
		}
	}
	e.local, e.kubeconfig, e.node = c, c.Kubeconfig(), c.NodeName()
	rc, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	e.clients(t, rc)
	return e
}

func (e *env) clients(t *testing.T, cfg *rest.Config) {
	t.Helper()
	var err error
	if e.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if e.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// readConfig returns the node's containerd config, or "" when this machine cannot read it (kind).
func (e *env) readConfig(t *testing.T) string {
	t.Helper()
	if e.local == nil {
		return ""
	}
	b, err := os.ReadFile(e.local.Layout().ContainerdConfig())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) annotate(t *testing.T, ctx context.Context, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.EnabledAnnotation, value)
	if _, err := e.client.CoreV1().Nodes().Patch(ctx, e.node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("annotate node %s %s=%s: %v", e.node, v1alpha1.EnabledAnnotation, value, err)
	}
}

func (e *env) nodeLabel(t *testing.T, ctx context.Context, key string) string {
	t.Helper()
	n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Labels[key]
}

func (e *env) nodeAnnotation(t *testing.T, ctx context.Context, key string) string {
	t.Helper()
	n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Annotations[key]
}

// waitLabel waits for the node's state label of the Shim called shimName to read want ("" = absent).
// A node that turns failed while something else is awaited fails the test at once.
func (e *env) waitLabel(t *testing.T, ctx context.Context, shimName, want string) {
	t.Helper()
	key := v1alpha1.NodeStateLabel(shimName)
	var got string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = n.Labels[key]
		if want != "" && got == string(v1alpha1.NodeFailed) {
			return false, fmt.Errorf("node %s is %s=%s", e.node, key, got)
		}
		return got == want, nil
	}); err != nil {
		t.Fatalf("wait for node %s label %s=%q (last %q): %v", e.node, key, want, got, err)
	}
}

// waitHandler waits for node.status.runtimeHandlers to list (or no longer list) the handler.
func (e *env) waitHandler(t *testing.T, ctx context.Context, present bool) {
	t.Helper()
	var names []string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, h := range n.Status.RuntimeHandlers {
			names = append(names, h.Name)
		}
		return slices.Contains(names, shim) == present, nil
	}); err != nil {
		t.Fatalf("wait for node %s runtimeHandlers %v to list %s = %v: %v", e.node, names, shim, present, err)
	}
}

func (e *env) pod(t *testing.T, ctx context.Context, name string) *corev1.Pod {
	t.Helper()
	p, err := e.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// podSpec runs the guest image with args, under runtimeClass when it is not "".
func podSpec(image, runtimeClass string, restart corev1.RestartPolicy, args ...string) corev1.PodSpec {
	s := corev1.PodSpec{RestartPolicy: restart, Containers: []corev1.Container{{Name: "guest", Image: image,
		ImagePullPolicy: corev1.PullNever, Args: args}}}
	if runtimeClass != "" {
		s.RuntimeClassName = &runtimeClass
	}
	return s
}

// runPod creates a pod and waits for its container to start. It returns the time from the Create
// call until the pod status first shows the container started (polled every 100 ms).
func (e *env) runPod(t *testing.T, ctx context.Context, name, image, runtimeClass string, args ...string) time.Duration {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: podSpec(image, runtimeClass, corev1.RestartPolicyNever, args...)}
	start := time.Now()
	if _, err := e.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitLong, true, func(ctx context.Context) (bool, error) {
		got, err := e.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		p = got
		for _, s := range got.Status.ContainerStatuses {
			if s.State.Running != nil || s.State.Terminated != nil {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("wait for pod %s to start: %v (status %+v)", name, err, p.Status)
	}
	return time.Since(start)
}

// waitLogs waits until the pod's logs, read through the API, contain want, and returns them.
func (e *env) waitLogs(t *testing.T, ctx context.Context, pod, want string) string {
	t.Helper()
	var logs string
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, waitLong, true, func(ctx context.Context) (bool, error) {
		b, err := e.client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return false, nil
		}
		logs = string(b)
		return strings.Contains(logs, want), nil
	}); err != nil {
		t.Fatalf("wait for pod %s logs to contain %q (got %q): %v", pod, want, logs, err)
	}
	return logs
}

// runJob runs the guest as a Wasm Job that exits 0 and waits for its completion.
func (e *env) runJob(t *testing.T, ctx context.Context) {
	t.Helper()
	backoff := int32(0)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "wasm-job"}, Spec: batchv1.JobSpec{BackoffLimit: &backoff,
		Template: corev1.PodTemplateSpec{Spec: podSpec(wasmImage, shim, corev1.RestartPolicyNever, "exit", "0")}}}
	if _, err := e.client.BatchV1().Jobs(ns).Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var status batchv1.JobStatus
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		got, err := e.client.BatchV1().Jobs(ns).Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		status = got.Status
		if got.Status.Failed > 0 {
			return false, fmt.Errorf("job %s failed: %+v", j.Name, got.Status)
		}
		return got.Status.Succeeded == 1, nil
	}); err != nil {
		t.Fatalf("wait for the Wasm Job to complete: %v (status %+v)", err, status)
	}
}

// archLimited creates a Shim whose only download is for another architecture: the node is marked
// unsupported, and the containerd config and the node's handlers are unchanged.
func (e *env) archLimited(t *testing.T, ctx context.Context) {
	t.Helper()
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	cfg := e.readConfig(t)
	manifest := fmt.Sprintf(`apiVersion: wasmkube.io/v1alpha1
kind: Shim
metadata:
  name: other-arch
spec:
  runtimeType: io.containerd.otherarch.v1
  source:
    http:
      platforms:
      - os: linux
        arch: %s
        url: https://example.invalid/containerd-shim-otherarch-v1
        sha256: "%s"
`, other, strings.Repeat("ab", 32))
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatal(err)
	}
	shims := e.dyn.Resource(v1alpha1.GroupVersion.WithResource("shims"))
	if _, err := shims.Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Shim other-arch: %v", err)
	}
	e.waitLabel(t, ctx, "other-arch", string(v1alpha1.NodeUnsupported))
	if after := e.readConfig(t); after != cfg {
		t.Errorf("an unsupported Shim changed the containerd config:\n%s", after)
	}
	if err := shims.Delete(ctx, "other-arch", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, waitLong, true, func(ctx context.Context) (bool, error) {
		_, err := shims.Get(ctx, "other-arch", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Errorf("wait for Shim other-arch to be deleted: %v", err)
	}
}

// driftAndHeal gives containerd the config it had before wasmkube and restarts it, as a re-imaged node or
// a configuration-management run would: the kubelet stops listing the handler, the manager labels the
// node drifted (with an Event) and reinstalls the shim, and a new Wasm pod runs. It reads only what a
// user sees (the node, the Shim's Events, pods), and the host's containerd config. The revert waits
// until settled, when the handler deadline after the last install has passed, so that the figures show
// how drift is found on a node installed a while ago (earlier, the deadline holds the check).
func (e *env) driftAndHeal(t *testing.T, ctx context.Context, pristine string, settled time.Time) {
	t.Helper()
	if e.local == nil {
		t.Log("drift: skipped on an existing cluster (this test cannot edit its node's containerd config)")
		return
	}
	if d := time.Until(settled); d > 0 {
		t.Logf("drift: %s until the handler deadline after the last install has passed", d.Round(time.Second))
		time.Sleep(d)
	}
	procs, err := e.local.ContainerdProcesses()
	if err != nil || len(procs) != 1 {
		t.Fatalf("find the node's containerd: %v (%d processes)", err, len(procs))
	}
	n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + e.node, ResourceVersion: n.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := os.WriteFile(e.local.Layout().ContainerdConfig(), []byte(pristine), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Kill(procs[0].PID, syscall.SIGTERM); err != nil { // its supervisor starts it again
		t.Fatalf("restart containerd: %v", err)
	}

	// Every change of the node from the restart on: when the kubelet drops the handler, when the node
	// is labelled drifted, ready again, and when the kubelet lists the handler again.
	var dropped, drifted, ready, listed time.Duration
	var labels []string
	wctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if _, err := watchtools.UntilWithoutRetry(wctx, w, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok {
			return false, fmt.Errorf("watch node %s: %v", e.node, ev.Object)
		}
		since := time.Since(start)
		label := n.Labels[v1alpha1.NodeStateLabel(shim)]
		if len(labels) == 0 || labels[len(labels)-1] != label {
			labels = append(labels, label)
		}
		handler := slices.ContainsFunc(n.Status.RuntimeHandlers, func(h corev1.NodeRuntimeHandler) bool { return h.Name == shim })
		switch {
		case label == string(v1alpha1.NodeFailed):
			return false, fmt.Errorf("node %s is %s", e.node, label)
		case dropped == 0 && !handler:
			dropped = since
		case drifted == 0 && label == string(v1alpha1.NodeDrifted):
			drifted = since
		case drifted > 0 && ready == 0 && label == string(v1alpha1.NodeReady):
			ready = since
		}
		if ready > 0 && handler {
			listed = since
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Fatalf("drift and repair (labels seen %q, handler dropped after %s, drifted after %s, ready after %s): %v",
			labels, dropped, drifted, ready, err)
	}
	round := func(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
	t.Logf("FIGURE drift: containerd restarted without the handler -> the kubelet no longer lists it %s, node drifted %s, ready %s, handler listed again %s (labels %q)",
		round(dropped), round(drifted), round(ready), round(listed), labels)
	if !slices.Equal(labels, []string{"ready", "drifted", "installing", "ready"}) {
		t.Errorf("node labels after the restart %q, want ready, drifted, installing, ready", labels)
	}

	var note string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := e.client.EventsV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, ev := range list.Items {
			if ev.Regarding.Kind == "Shim" && ev.Regarding.Name == shim && ev.Reason == v1alpha1.ReasonNodeDrifted && ev.CreationTimestamp.Time.After(start.Add(-time.Second)) {
				note = ev.Note
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no NodeDrifted Event after containerd lost the handler: %v", err)
	}
	if want := "node " + e.node + ": the kubelet does not list the handler in status.runtimeHandlers"; !strings.HasPrefix(note, want) {
		t.Errorf("NodeDrifted Event %q, want it to begin with %q", note, want)
	}
	if cfg := e.readConfig(t); !strings.Contains(cfg, "managed by wasmkube") {
		t.Errorf("containerd config after the repair lacks wasmkube's block:\n%s", cfg)
	}
	e.runPod(t, ctx, "wasm-healed", wasmImage, shim, "hello", "healed")
	e.waitLogs(t, ctx, "wasm-healed", `"healed"`)
}

func (e *env) deletePods(t *testing.T, ctx context.Context) {
	t.Helper()
	zero := int64(0)
	for _, p := range []string{"wasm-hello", "plain-hello", "wasm-sleep", "wasm-after", "wasm-healed"} {
		if err := e.client.CoreV1().Pods(ns).Delete(ctx, p, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	}
	bg := metav1.DeletePropagationBackground
	if err := e.client.BatchV1().Jobs(ns).Delete(ctx, "wasm-job", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		t.Error(err)
	}
}

// dumpDiagnostics prints the manager's logs, the installer Jobs' results and the containerd config.
func (e *env) dumpDiagnostics(t *testing.T) {
	ctx := context.Background()
	if evs, err := e.client.EventsV1().Events("").List(ctx, metav1.ListOptions{}); err == nil {
		for _, ev := range evs.Items {
			if ev.Regarding.Kind == "Shim" {
				t.Logf("event %s Shim/%s %s: %s", ev.CreationTimestamp.Format(time.TimeOnly), ev.Regarding.Name, ev.Reason, ev.Note)
			}
		}
	}
	if n, err := e.client.CoreV1().Nodes().Get(ctx, e.node, metav1.GetOptions{}); err == nil {
		t.Logf("node %s labels %v annotations %v runtimeHandlers %v", n.Name, n.Labels, n.Annotations, n.Status.RuntimeHandlers)
	}
	pods, err := e.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Namespace, "wasmkube") {
			continue
		}
		b, _ := e.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		var results []string
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Terminated != nil {
				results = append(results, fmt.Sprintf("exit %d: %s", s.State.Terminated.ExitCode, s.State.Terminated.Message))
			}
		}
		t.Logf("pod %s/%s phase %s %s\nlogs:\n%s", p.Namespace, p.Name, p.Status.Phase, strings.Join(results, "; "), tail(b, 60))
	}
	t.Logf("containerd config:\n%s", e.readConfig(t))
}

func tail(b []byte, lines int) string {
	l := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return string(bytes.Join(l, []byte("\n")))
}
