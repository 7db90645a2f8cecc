package cluster

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// Generous bounds: CI machines are slow and shared with other test packages.
const (
	upTimeout   = 3 * time.Minute
	waitTimeout = 2 * time.Minute
)

const (
	helloPackage = "github.com/wasmkube/wasmkube/test/cluster/internal/hello"
	helloImage   = "wasmkube.test/hello:1"
)

// testConfig returns a Config for a cluster in a fresh short work directory, with the binaries
// from the tool environment. It skips under -short.
func testConfig(t *testing.T) Config {
	t.Helper()
	bins := Binaries{
		KubeDir:       testenv.Path(t, testenv.EnvKubeDir), // skips under -short: before any file is made
		Etcd:          testenv.Path(t, testenv.EnvEtcd),
		ContainerdDir: testenv.Containerd2Dir(t),
		Runc:          testenv.Runc(t),
		CNIDir:        testenv.CNIDir(t),
	}
	cache := filepath.Join(testenv.Path(t, testenv.EnvCacheDir), "testbin")
	dir, err := os.MkdirTemp("/tmp", "wkc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Down removes the directory; it is only left after a failure already reported.
		if _, err := os.Stat(dir); err == nil {
			t.Logf("work directory %s left for inspection", dir)
		}
	})
	return Config{WorkDir: dir, Binaries: bins, CacheDir: cache, Progress: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestCluster starts a cluster, checks the node, runs a pod that talks to the apiserver through the
// kubernetes service and reads its logs through the kubelet, restarts containerd the way the node
// installer does (SIGTERM, the supervisor starts it again) and checks that the node and the pod are
// unaffected, then tears the cluster down and checks that nothing is left.
func TestCluster(t *testing.T) {
	testenv.LocalClusterLock(t)
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout+3*waitTimeout)
	defer cancel()

	upCtx, upCancel := context.WithTimeout(ctx, upTimeout)
	c, err := Up(upCtx, cfg)
	upCancel()
	if err != nil {
		t.Fatal(err)
	}
	upTime := time.Since(c.State().StartedAt)
	down := false
	t.Cleanup(func() {
		if !down {
			if t.Failed() {
				t.Logf("logs at failure:%s", c.logTails())
			}
			if err := c.Down(context.Background()); err != nil {
				t.Error(err)
			}
		}
	})
	client, err := c.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("node", func(t *testing.T) {
		node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !NodeReady(node) {
			t.Errorf("node %s is not Ready: %+v", node.Name, node.Status.Conditions)
		}
		if got := node.Labels[corev1.LabelArchStable]; got != runtime.GOARCH {
			t.Errorf("node label %s = %q, want %q", corev1.LabelArchStable, got, runtime.GOARCH)
		}
		var handlers []string
		for _, h := range node.Status.RuntimeHandlers {
			handlers = append(handlers, h.Name)
		}
		if !slices.Contains(handlers, "runc") {
			t.Errorf("node status.runtimeHandlers = %q, want it to list runc", handlers)
		}
		if got := node.Status.Addresses; !slices.Contains(got, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: c.State().Network.NodeIP}) {
			t.Errorf("node addresses %v lack InternalIP %s", got, c.State().Network.NodeIP)
		}
	})

	t.Run("load", func(t *testing.T) {
		// Another process (the CLI's down and status) sees the cluster through its state file.
		loaded, err := Load(cfg.WorkDir)
		if err != nil {
			t.Fatal(err)
		}
		if s := loaded.Status(ctx); !s.Healthy() {
			t.Errorf("status of the loaded cluster is not healthy: %+v", s)
		}
		if _, err := Up(ctx, cfg); !errors.Is(err, ErrExists) {
			t.Errorf("Up in a running cluster's work directory: got %v, want ErrExists", err)
		}
	})

	// A pod talks to the apiserver through kubernetes.default (the service DNAT) and logs the answer.
	tarball := filepath.Join(t.TempDir(), "hello.tar")
	if err := containerdtest.ImageTarball(containerdtest.Build(t, helloPackage), "hello", helloImage, tarball); err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(ctx, tarball); err != nil {
		t.Fatal(err)
	}
	podStart := time.Now()
	pod := runPod(ctx, t, client, helloPod("hello", nil))
	podTime := time.Since(podStart)
	version := "apiserver version " + serverVersion(t, client)
	waitLogs(ctx, t, client, pod, version)

	t.Run("containerd restart from a pod", func(t *testing.T) {
		node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		readySince := readyCondition(node).LastTransitionTime
		old := containerdProcess(t, c)
		config := c.Layout().ContainerdConfig()
		// What the node installer does: a privileged hostPID pod with the host's root at /host reads
		// the containerd config through /host and signals the containerd that names it.
		restarter := helloPod("restarter", []string{"restart", config})
		restarter.Spec.HostPID = true
		privileged := true
		restarter.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
		restarter.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
		restarter.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		restarter = runPod(ctx, t, client, restarter)
		content, err := os.ReadFile(config)
		if err != nil {
			t.Fatal(err)
		}
		waitLogs(ctx, t, client, restarter, fmt.Sprintf("config sha256 %x", sha256.Sum256(content)))
		waitLogs(ctx, t, client, restarter, fmt.Sprintf("signalled containerd PID %d", old.PID))

		var cur restart.Process
		err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, waitTimeout, true, func(context.Context) (bool, error) {
			procs, err := c.ContainerdProcesses()
			if err != nil || len(procs) != 1 || procs[0].PID == old.PID {
				return false, err
			}
			cur = procs[0]
			st, err := criStatus(ctx, c.Layout().CRISocket())
			return err == nil && st.RuntimeReady, nil
		})
		if err != nil {
			t.Fatalf("the supervisor did not start containerd again: %v\n%s", err, c.logTails())
		}
		// The installer's finder picks the new process among every containerd on this machine.
		if found, err := (&restart.Signal{Match: []string{config}}).Find(); err != nil || found.PID != cur.PID {
			t.Errorf("restart.Signal.Find = PID %d, %v; want the new containerd PID %d", found.PID, err, cur.PID)
		}
		// Over two node status updates and runtime health checks of the kubelet, the node stays Ready
		// (its condition never flips) and both pods keep running in the same containers.
		deadline := time.Now().Add(7 * time.Second)
		for time.Now().Before(deadline) {
			node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rc := readyCondition(node); rc.Status != corev1.ConditionTrue || !rc.LastTransitionTime.Equal(&readySince) {
				t.Fatalf("node Ready condition changed after the containerd restart: %+v", rc)
			}
			for _, before := range []*corev1.Pod{pod, restarter} {
				assertUnchanged(ctx, t, client, before)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// The kubelet reaches the new containerd: logs still come through the API.
		waitLogs(ctx, t, client, pod, version)
	})

	reportResources(t, c, upTime, podTime)

	st, baseline := c.State(), readBaseline(t)
	if baseline == nil {
		t.Logf("no host baseline: a kubelet not started by a local cluster ran before this one")
	}
	downStart := time.Now()
	down = true
	if err := c.Down(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("down in %s", time.Since(downStart).Round(10*time.Millisecond))
	assertNothingLeft(t, st, baseline)
}

// TestUpFailure checks that a start that fails (etcd exits at once) reports the failing component
// with its log and leaves nothing behind.
func TestUpFailure(t *testing.T) {
	testenv.LocalClusterLock(t)
	cfg := testConfig(t)
	cfg.Binaries.Etcd = "/bin/false"
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	c, err := Up(ctx, cfg)
	if err == nil {
		c.Down(context.Background())
		t.Fatal("Up with an etcd that exits at once succeeded")
	}
	t.Logf("Up failed as expected: %v", err)
	var serr *StartError
	if !errors.As(err, &serr) {
		t.Fatalf("Up error is a %T, want *StartError", err)
	}
	if !strings.Contains(err.Error(), "etcd (PID") || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Up error does not name the exited etcd: %v", err)
	}
	if serr.Cleanup != nil {
		t.Errorf("clean-up after the failed start: %v", serr.Cleanup)
	}
	if serr.State.Network.Bridge == "" || len(serr.State.Processes) == 0 {
		t.Fatalf("Up failed before it claimed a slot and started processes: %+v", serr.State)
	}
	assertNothingLeft(t, serr.State, readBaseline(t))
}

// helloPod returns a pod running helloImage with args.
func helloPod(name string, args []string) *corev1.Pod {
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "hello", Image: helloImage, ImagePullPolicy: corev1.PullNever, Args: args,
			}},
		},
	}
}

// runPod creates a pod with one container and waits until it runs.
func runPod(ctx context.Context, t *testing.T, client kubernetes.Interface, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	name := pod.Name
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = p
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("pod %s ended: %s", name, p.Status.Phase)
		}
		cs := p.Status.ContainerStatuses
		return p.Status.Phase == corev1.PodRunning && len(cs) == 1 && cs[0].State.Running != nil, nil
	})
	if err != nil {
		events, _ := client.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		var lines []string
		for _, e := range events.Items {
			lines = append(lines, fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message))
		}
		t.Fatalf("pod %s not running: %v\nstatus: %+v\nevents:\n%s", name, err, got.Status, strings.Join(lines, "\n"))
	}
	return got
}

// assertUnchanged fails t unless the pod still runs its container as it did in before.
func assertUnchanged(ctx context.Context, t *testing.T, client kubernetes.Interface, before *corev1.Pod) {
	t.Helper()
	p, err := client.CoreV1().Pods(before.Namespace).Get(ctx, before.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := before.Status.ContainerStatuses[0].ContainerID
	if cs := p.Status.ContainerStatuses; p.Status.Phase != corev1.PodRunning || len(cs) != 1 || cs[0].ContainerID != want || cs[0].RestartCount != 0 || cs[0].State.Running == nil {
		t.Fatalf("pod %s changed after the containerd restart: phase %s, containers %+v (was %s)", p.Name, p.Status.Phase, cs, want)
	}
}

// waitLogs waits until the pod's log (read through the apiserver and the kubelet) contains want.
func waitLogs(ctx context.Context, t *testing.T, client kubernetes.Interface, pod *corev1.Pod, want string) {
	t.Helper()
	var logs string
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, waitTimeout, true, func(ctx context.Context) (bool, error) {
		b, err := client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		logs, lastErr = string(b), err
		return err == nil && strings.Contains(logs, want), nil
	})
	if err != nil {
		t.Fatalf("logs of pod %s lack %q: %v (last error: %v); logs:\n%s", pod.Name, want, err, lastErr, logs)
	}
}

func serverVersion(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v.GitVersion
}

func readyCondition(node *corev1.Node) corev1.NodeCondition {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func containerdProcess(t *testing.T, c *Cluster) restart.Process {
	t.Helper()
	procs, err := c.ContainerdProcesses()
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 {
		t.Fatalf("%d containerd processes run the cluster's config, want 1: %+v", len(procs), procs)
	}
	return procs[0]
}

// reportResources logs the start-up times and the resident memory of every cluster process.
func reportResources(t *testing.T, c *Cluster, upTime, podTime time.Duration) {
	t.Helper()
	procs, err := restart.Processes("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "process\tRSS MiB\t\n")
	total := 0.0
	for _, p := range procs {
		if !slices.ContainsFunc(p.Args, func(a string) bool { return strings.Contains(a, c.Layout().WorkDir+"/") }) {
			continue
		}
		rss := rssMiB(p.PID)
		total += rss
		fmt.Fprintf(w, "%s\t%.1f\t\n", p.Comm, rss)
	}
	fmt.Fprintf(w, "total\t%.1f\t\n", total)
	w.Flush()
	t.Logf("cluster up (node Ready) in %s; first pod running %s after create\n%s", upTime.Round(10*time.Millisecond), podTime.Round(10*time.Millisecond), b.String())
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// assertNothingLeft checks that the cluster recorded in st left nothing behind: no process, mount,
// bridge, iptables chain, cgroup, container log link or file, and, when no kubelet runs any more, the
// host as baseline (read before Down; nil if there was none) recorded it.
func assertNothingLeft(t *testing.T, st State, baseline *HostBaseline) {
	t.Helper()
	dir, n := st.Config.WorkDir, st.Network
	for _, p := range st.Processes {
		if p.Alive() {
			t.Errorf("%s (PID %d) still runs", p.Name, p.PID)
		}
	}
	procs, err := processesMentioning(dir + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		t.Errorf("process %d (%s) still names the work directory", p.PID, strings.Join(p.Args, " "))
	}
	if mounts, err := containerdtest.MountsUnder(dir); err != nil || len(mounts) > 0 {
		t.Errorf("mounts left under %s: %v %v", dir, mounts, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("work directory %s still exists (stat: %v)", dir, err)
	}
	if n.Bridge != "" {
		if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
			t.Errorf("bridge %s still exists", n.Bridge)
		}
		if chainExists(n.Chain) {
			t.Errorf("iptables chain %s still exists", n.Chain)
		}
	}
	if n.CgroupRoot != "" {
		v1, v2, err := cgroupMounts()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range append(v1, v2...) {
			if _, err := os.Stat(filepath.Join(h, n.CgroupRoot)); err == nil {
				t.Errorf("cgroup %s still exists", filepath.Join(h, n.CgroupRoot))
			}
		}
	}
	if entries, err := os.ReadDir(containerLogLinks); err == nil {
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(containerLogLinks, e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
				t.Errorf("container log link %s -> %s left", e.Name(), target)
			}
		}
	}
	assertBaselineRestored(t, baseline)
}

// assertBaselineRestored checks, when no kubelet runs any more, that the baseline file is gone and the
// host is as baseline recorded it. While another cluster's kubelet runs, the file must stay.
func assertBaselineRestored(t *testing.T, baseline *HostBaseline) {
	t.Helper()
	running, err := kubeletRunning()
	if err != nil {
		t.Fatal(err)
	}
	_, statErr := os.Stat(BaselineFile)
	if running {
		if baseline != nil && statErr != nil {
			t.Errorf("host baseline %s removed while a kubelet runs: %v", BaselineFile, statErr)
		}
		return
	}
	if statErr == nil {
		t.Errorf("host baseline %s left although no kubelet runs", BaselineFile)
	}
	if baseline == nil {
		return
	}
	for k, v := range baseline.Sysctls {
		if cur, err := os.ReadFile("/proc/sys/" + k); err != nil || strings.TrimSpace(string(cur)) != v {
			t.Errorf("sysctl %s = %q, want %q as before the clusters (err %v)", k, strings.TrimSpace(string(cur)), v, err)
		}
	}
	for _, c := range baseline.MissingChains {
		if xtables(c.Command, c.Table, "-S", c.Name) == nil {
			t.Errorf("%s chain %s/%s left by the kubelet", c.Command, c.Table, c.Name)
		}
	}
	for _, d := range baseline.MissingDirs {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("kubelet directory %s left", d)
		}
	}
}

// readBaseline reads the host baseline for assertNothingLeft.
func readBaseline(t *testing.T) *HostBaseline {
	t.Helper()
	b, err := ReadBaseline()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
