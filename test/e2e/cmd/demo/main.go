// Command demo installs wasmkube on a running local cluster (test/cluster, `make cluster-up`) and
// runs a Wasm pod on it: it builds the images for this machine, imports them into the node,
// installs the chart with helm, annotates the node, waits for the wazero shim, runs a Go wasip1
// guest under runtimeClassName wazero and prints its output and the next commands. `make demo`
// runs it; the cluster stays up until `make demo-down`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/test/cluster"
	"github.com/wasmkube/wasmkube/test/e2e"
)

const (
	podName   = "hello-wasm"
	wasmImage = e2e.Registry + "/hello-wasm:" + e2e.Tag
	timeout   = 4 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	workDir := pflag.String("work-dir", "/tmp/wasmkube-cluster", "work directory of the running local cluster")
	helm := pflag.String("helm", os.Getenv("WASMKUBE_HELM"), "helm binary (env WASMKUBE_HELM)")
	pflag.Parse()
	if err := run(ctx, *workDir, *helm, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, workDir, helm string, out io.Writer) error {
	if helm == "" {
		return fmt.Errorf("no helm: set --helm or WASMKUBE_HELM (make demo does)")
	}
	c, err := cluster.Load(workDir)
	if err != nil {
		return fmt.Errorf("load the local cluster in %s (start it with make cluster-up): %w", workDir, err)
	}
	client, err := c.Clientset()
	if err != nil {
		return err
	}
	mod, err := e2e.ModuleDir()
	if err != nil {
		return err
	}
	build, err := os.MkdirTemp("", "wasmkube-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)

	step(out, "building the manager and node-installer images")
	tarballs, err := e2e.BuildImages(ctx, mod, build, out)
	if err != nil {
		return err
	}
	step(out, "building the Wasm guest (Go, GOOS=wasip1) and its image")
	guest, err := wazeroguest.BuildTo(build)
	if err != nil {
		return err
	}
	tarballs[wasmImage] = filepath.Join(build, "hello-wasm.tar")
	if err := containerdtest.ImageTarball(guest, "app.wasm", wasmImage, tarballs[wasmImage]); err != nil {
		return err
	}
	for ref, tb := range tarballs {
		step(out, "importing "+ref)
		if err := c.ImportImage(ctx, tb); err != nil {
			return fmt.Errorf("import %s: %w", ref, err)
		}
	}

	step(out, "helm install wasmkube")
	if _, err := e2e.Helm(ctx, helm, c.Kubeconfig(), e2e.InstallArgs(filepath.Join(mod, "charts", "wasmkube"), e2e.LocalOverrides(c.Layout()))...); err != nil {
		return err
	}
	if err := e2e.WaitManager(ctx, client, timeout); err != nil {
		return err
	}
	step(out, "annotating node "+c.NodeName()+" "+v1alpha1.EnabledAnnotation+"=true")
	start := time.Now()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, v1alpha1.EnabledAnnotation)
	if _, err := client.CoreV1().Nodes().Patch(ctx, c.NodeName(), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate node %s: %w", c.NodeName(), err)
	}
	label := v1alpha1.NodeStateLabel("wazero")
	if err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
		return err == nil && n.Labels[label] == string(v1alpha1.NodeReady), nil
	}); err != nil {
		return fmt.Errorf("wait for node %s %s=ready: %w", c.NodeName(), label, err)
	}
	fmt.Fprintf(out, "    %s=ready after %s\n", label, time.Since(start).Round(time.Millisecond))

	step(out, "running pod "+podName+" with runtimeClassName wazero")
	logs, err := runPod(ctx, client)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s says:\n%s\n", podName, logs)
	kubectl := "kubectl"
	if _, err := exec.LookPath(kubectl); err != nil && os.Getenv("WASMKUBE_KUBE_DIR") != "" {
		kubectl = filepath.Join(os.Getenv("WASMKUBE_KUBE_DIR"), "kubectl")
	}
	fmt.Fprintf(out, `The cluster keeps running. Next:
  export KUBECONFIG=%[1]s
  %[2]s get nodes -L %[3]s
  %[2]s get shims,runtimeclasses
  %[2]s logs %[4]s
  make demo-down CLUSTER_DIR=%[5]s   # stop the cluster and remove everything
`, c.Kubeconfig(), kubectl, label, podName, workDir)
	return nil
}

func step(out io.Writer, s string) { fmt.Fprintf(out, "==> %s\n", s) }

// runPod (re)creates the demo pod and returns its logs once it has exited.
func runPod(ctx context.Context, client kubernetes.Interface) (string, error) {
	pods := client.CoreV1().Pods("default")
	zero := int64(0)
	_ = pods.Delete(ctx, podName, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	rc := "wazero"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName}, Spec: corev1.PodSpec{
		RuntimeClassName: &rc, RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "guest", Image: wasmImage, ImagePullPolicy: corev1.PullNever, Args: []string{"hello", "from", "make", "demo"}}},
	}}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, podName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		return "", fmt.Errorf("wait for the previous pod %s to go: %w", podName, err)
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create pod %s: %w", podName, err)
	}
	var phase corev1.PodPhase
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
	})
	if err != nil {
		return "", fmt.Errorf("wait for pod %s to finish (phase %q): %w", podName, phase, err)
	}
	b, err := pods.GetLogs(podName, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("logs of pod %s: %w", podName, err)
	}
	if phase == corev1.PodFailed {
		return string(b), fmt.Errorf("pod %s failed; its logs:\n%s", podName, b)
	}
	return string(b), nil
}
