package scale

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/kwoktest"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

var (
	sizes = flag.String("sizes", "", "node counts for TestBenchScale, e.g. \"1000 5000\" (empty: skip the benchmark)")
	runs  = flag.Int("runs", 3, "how often TestBenchScale measures the floor and both rollouts at each size (it reports medians)")
	// withChart can skip the chart-default rollout while working on the manager's overhead (and on a
	// manager whose default rolls out one node at a time, which takes hours at 5,000 nodes).
	withChart     = flag.Bool("chart", true, "TestBenchScale: also measure the rollout with the chart's default settings")
	withSlowFloor = flag.Bool("slow-start-floor", true, "TestBenchScale: also measure the floor with the Jobs created as slow start would")
	kcmQPS        = flag.Int("kcm-qps", 500, "kube-controller-manager --kube-api-qps for the benchmark (its default is 20)")
	// profileDir makes the benchmark save the manager's and the API server's CPU profiles of the first
	// -profile-seconds of each rollout and the manager's heap profile at its end, as
	// <dir>/<nodes>-<rollout>-<run>-<kind>.pprof.
	profileDir     = flag.String("profile-dir", "", "save manager and API server profiles of each rollout here")
	profileSeconds = flag.Int("profile-seconds", 20, "length of the CPU profiles with -profile-dir")
)

const (
	namespace = "wasmkube-system"
	// shimName is the benchmark's Shim; every rollout creates it anew (see env.reset).
	shimName = "bench"
)

func TestMain(m *testing.M) {
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the manager runs as its own process
	os.Exit(m.Run())
}

// TestScaleSmoke rolls one Shim out to 50 KWOK nodes (half arm64) with the chart's default rollout
// settings through the manager binary, and checks that every node ends ready with one Event each. It
// asserts no figures.
func TestScaleSmoke(t *testing.T) {
	env := setup(t, 50, 0)
	res := env.rollout(t, chartRollout(t), "smoke", 0)
	if res.ready != 50 {
		t.Fatalf("%d of 50 nodes ready", res.ready)
	}
	// Each node's result is an Event; the manager writes them asynchronously, and flushes them as it stops.
	var list eventsv1.EventList
	if err := env.c.List(context.Background(), &list, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatal(err)
	}
	installed := 0
	for _, ev := range list.Items {
		if ev.Reason == v1alpha1.ReasonInstalled && ev.Regarding.Name == shimName {
			installed++
		}
	}
	if installed != 50 {
		t.Errorf("%d %s Events about Shim %s, want one per node (50)", installed, v1alpha1.ReasonInstalled, shimName)
	}
	t.Logf("50 nodes: rollout %s, manager RSS %d MiB, CPU %.1fs", res.wall.Round(100*time.Millisecond), res.rssMiB, res.cpu.Seconds())
}

type env struct {
	t       *testing.T
	n       int
	cluster *kwoktest.Cluster
	c       client.WithWatch
	manager string // binary
	dir     string
	stopped bool
}

// setup starts a control plane with n Ready KWOK nodes (half arm64) and builds the manager binary.
func setup(t *testing.T, n, qps int) *env {
	t.Helper()
	testenv.EnvtestAssets(t)
	testenv.KubeBinary(t, "kube-controller-manager")
	testenv.KubeBinary(t, "kube-scheduler")
	testenv.Path(t, testenv.EnvKwokDir, "bin", "kwok")
	dir, err := os.MkdirTemp("/tmp", "wkscale")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, n: n, dir: dir, manager: filepath.Join(dir, "manager")}
	build := exec.Command("go", "build", "-o", e.manager, "github.com/wasmkube/wasmkube/cmd/manager")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the manager: %v\n%s", err, out)
	}
	e.cluster, err = kwoktest.Start(kwoktest.Options{
		CRDPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")},
		LogDir:   dir, Scheduler: true, KCMQPS: qps, KCMBurst: 2 * qps,
	})
	t.Cleanup(e.stop)
	if err != nil {
		t.Fatal(err)
	}
	// No client-side rate limit, like the manager's (controller-runtime's default): the floor's creates
	// are limited by the control plane only.
	cfg := *e.cluster.Config
	cfg.QPS, cfg.Burst = -1, 0
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	if e.c, err = client.NewWithWatch(&cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	e.createNodes(ctx)
	return e
}

func (e *env) stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	if e.cluster != nil {
		if err := e.cluster.Stop(); err != nil {
			e.t.Error(err)
		}
	}
	if e.t.Failed() {
		e.t.Logf("logs kept in %s", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

// createNodes creates the nodes with 16 workers and waits until KWOK reports them all Ready.
func (e *env) createNodes(ctx context.Context) {
	e.t.Helper()
	err := forEach(e.n, 16, func(i int) error {
		arch := "amd64"
		if i%2 == 1 {
			arch = "arm64"
		}
		return e.c.Create(ctx, kwoktest.Node(nodeName(i), arch, map[string]string{"pool": "bench"}, nil))
	})
	if err != nil {
		e.t.Fatalf("create nodes: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list corev1.NodeList
		if err := e.c.List(ctx, &list); err != nil {
			return false, err
		}
		ready := 0
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == e.n, nil
	})
	if err != nil {
		e.t.Fatalf("%d nodes did not become Ready: %v", e.n, err)
	}
}

func nodeName(i int) string { return fmt.Sprintf("node-%05d", i) }

// forEach calls fn for 0..n-1 on up to workers goroutines and returns the first error.
func forEach(n, workers int, fn func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}

// watchUntil lists and watches objects of list's kind (through a RetryWatcher-like informer, since the
// API server ends watches after a while) and returns once done reports true for an event, or after
// timeout.
func (e *env) watchUntil(ctx context.Context, list client.ObjectList, obj runtime.Object, timeout time.Duration,
	opts []client.ListOption, done func(watch.Event) (bool, error)) error {
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l := list.DeepCopyObject().(client.ObjectList)
			err := e.c.List(ctx, l, append(opts, &client.ListOptions{Raw: &o})...)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return e.c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), append(opts, &client.ListOptions{Raw: &o})...)
		},
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := watchtools.UntilWithSync(ctx, lw, obj, nil, done)
	return err
}

func jobComplete(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// deleteJobs deletes the Jobs in the benchmark namespace and waits until their pods are gone, so that
// the garbage collector's work does not land on the next run's clock. It deletes the Jobs one by one,
// 50 at a time: the API server deletes a collection one object after the other, and 5,000 Jobs outlast
// its request timeout.
func (e *env) deleteJobs() {
	e.t.Helper()
	ctx := context.Background()
	var jobs metav1.PartialObjectMetadataList
	jobs.SetGroupVersionKind(batchv1.SchemeGroupVersion.WithKind("JobList"))
	if err := e.c.List(ctx, &jobs, client.InNamespace(namespace)); err != nil {
		e.t.Fatalf("list the benchmark's Jobs: %v", err)
	}
	err := forEach(len(jobs.Items), 50, func(i int) error {
		job := &jobs.Items[i]
		err := e.c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Job %s: %w", job.Name, err)
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("delete the benchmark's Jobs: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		var pods metav1.PartialObjectMetadataList
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := e.c.List(ctx, &pods, client.InNamespace(namespace), client.Limit(1)); err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
	if err != nil {
		e.t.Fatalf("the deleted Jobs' pods are still there: %v", err)
	}
}

// reset undoes a rollout without a manager, so that the next one starts from the same state: it deletes
// the Shim (dropping its finalizer), its RuntimeClass and its Jobs, and removes its label and hash
// annotation from every node.
func (e *env) reset() {
	e.t.Helper()
	ctx := context.Background()
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: shimName}}
	noFinalizers := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	if err := e.c.Patch(ctx, shim, noFinalizers); err != nil && !apierrors.IsNotFound(err) {
		e.t.Fatalf("drop the finalizer of Shim %s: %v", shimName, err)
	}
	for _, obj := range []client.Object{shim, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: shimName}}} {
		if err := e.c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
			e.t.Fatalf("delete %T %s: %v", obj, shimName, err)
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			e.t.Fatalf("%T %s is still there: %v", obj, shimName, err)
		}
	}
	e.deleteJobs()
	label := v1alpha1.NodeStateLabel(shimName)
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:null},"annotations":{%q:null}}}`, label, v1alpha1.NodeHashAnnotation(shimName))
	err := forEach(e.n, 50, func(i int) error {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i)}}
		return e.c.Patch(ctx, node, client.RawPatch(types.MergePatchType, patch))
	})
	if err != nil {
		e.t.Fatalf("remove the label %s from the nodes: %v", label, err)
	}
}

type result struct {
	wall time.Duration
	// progress is the number of ready nodes over time.
	progress *progress
	ready    int
	rssMiB   int64
	// startRSSMiB is the manager's peak RSS before the Shim was created: its caches' initial sync.
	startRSSMiB int64
	cpu         time.Duration
	// requests maps HTTP methods to the requests the manager made, plus the shim controller's
	// reconcile count and total seconds and the Go heap in use at the end, under their metric names.
	requests map[string]float64
}

// perNode returns the manager's requests of an HTTP method per node.
func (r result) perNode(method string, nodes int) float64 { return r.requests[method] / float64(nodes) }

// latencyMS returns the manager's mean request latency of an HTTP method in milliseconds.
func (r result) latencyMS(method string) float64 {
	return 1000 * r.requests["latency_sum_"+method] / max(r.requests["latency_count_"+method], 1)
}

// queueMS returns the mean time a Shim waited in the controller's workqueue, in milliseconds.
func (r result) queueMS() float64 {
	return 1000 * r.requests["workqueue_queue_duration_seconds_sum"] / max(r.requests["workqueue_queue_duration_seconds_count"], 1)
}

// writesPerNode returns the manager's POST, PATCH, PUT and DELETE requests per node.
func (r result) writesPerNode(nodes int) float64 {
	return r.perNode("POST", nodes) + r.perNode("PATCH", nodes) + r.perNode("PUT", nodes) + r.perNode("DELETE", nodes)
}

// rollout starts the manager binary and waits until its controller runs (caches synced), then creates
// the Shim over all nodes with the given rollout settings, waits until every node is ready, and stops
// the manager to read its resource usage and request counts. The wall time runs from the Shim's
// creation until its status reports every node ready. tag and run name the profiles (-profile-dir).
func (e *env) rollout(t *testing.T, settings v1alpha1.RolloutSpec, tag string, run int) result {
	t.Helper()
	ctx := context.Background()
	metricsAddr := freeAddr(t)
	logPath := filepath.Join(e.dir, fmt.Sprintf("manager-%s-%d.log", tag, run))
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// KWOK nodes report no runtime handlers, so verify Jobs would start once the first nodes have been
	// ready for their interval; the benchmark measures the rollout alone.
	args := []string{"--installer-image=wasmkube/node-installer:bench", "--namespace=" + namespace,
		"--leader-elect=false", "--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0",
		"--handler-deadline=0", "--verify-interval=0"}
	pprofAddr := ""
	if *profileDir != "" {
		pprofAddr = freeAddr(t)
		args = append(args, "--pprof-bind-address="+pprofAddr)
	}
	cmd := exec.Command(e.manager, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cluster.Kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(`"Starting workers"`)), err
	})
	if err != nil {
		t.Fatalf("the manager's controller did not start (log %s): %v", logPath, err)
	}

	startRSS, err := peakRSSMiB(cmd.Process.Pid)
	if err != nil {
		t.Fatalf("read the manager's RSS: %v", err)
	}
	shim := &v1alpha1.Shim{
		ObjectMeta: metav1.ObjectMeta{Name: shimName},
		Spec: v1alpha1.ShimSpec{
			RuntimeType:  "io.containerd.wazero.v1",
			Source:       v1alpha1.ShimSource{Builtin: "wazero"},
			NodeSelector: map[string]string{},
			Rollout:      settings,
		},
	}
	start := time.Now()
	prog := newProgress()
	if err := e.c.Create(ctx, shim); err != nil {
		t.Fatal(err)
	}
	var profiled sync.WaitGroup
	profile := func(addr, query, kind string) {
		e.saveProfile(addr, query, fmt.Sprintf("%d-%s-%d-%s", e.n, tag, run, kind))
	}
	if pprofAddr != "" {
		query := fmt.Sprintf("profile?seconds=%d", *profileSeconds)
		profiled.Go(func() { profile(pprofAddr, query, "cpu") })
		profiled.Go(func() { profile("", query, "apiserver-cpu") })
	}
	var res result
	var status v1alpha1.ShimStatus
	err = e.watchUntil(ctx, &v1alpha1.ShimList{}, &v1alpha1.Shim{}, 60*time.Minute, nil, func(ev watch.Event) (bool, error) {
		s, ok := ev.Object.(*v1alpha1.Shim)
		if !ok || s.Name != shimName {
			return false, nil
		}
		status = s.Status
		prog.record(int(status.Nodes.Ready))
		return int(status.Nodes.Ready) == e.n || status.Nodes.Failed > 0, nil
	})
	res.wall = time.Since(start)
	res.ready, res.progress = int(status.Nodes.Ready), prog
	if err := prog.save(fmt.Sprintf("%d-%s-%d", e.n, tag, run)); err != nil {
		t.Error(err)
	}
	if err != nil || res.ready != e.n {
		t.Fatalf("rollout to %d nodes: %v, status %+v (logs in %s)", e.n, err, status.Nodes, e.dir)
	}
	res.requests, err = scrapeRequests(metricsAddr)
	if err != nil {
		t.Fatalf("scrape manager metrics: %v", err)
	}
	if pprofAddr != "" {
		profile(pprofAddr, "heap", "heap")
		profiled.Wait()
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	killed = true
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.rssMiB = ru.Maxrss / 1024
	}
	res.startRSSMiB = startRSS
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res
}

// saveProfile downloads /debug/pprof/<query> into -profile-dir as <name>.pprof: from the manager at
// addr, or from the kube-apiserver when addr is "".
func (e *env) saveProfile(addr, query, name string) {
	hc, url := http.DefaultClient, "http://"+addr+"/debug/pprof/"+query
	if addr == "" {
		var err error
		if hc, err = rest.HTTPClientFor(e.cluster.Config); err != nil {
			e.t.Errorf("client for the apiserver: %v", err)
			return
		}
		url = strings.TrimSuffix(e.cluster.Config.Host, "/") + "/debug/pprof/" + query
	}
	resp, err := hc.Get(url)
	if err != nil {
		e.t.Errorf("get profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(*profileDir, name+".pprof"), b, 0o644)
	}
	if err != nil {
		e.t.Errorf("save profile %s: %v", name, err)
	}
}

// scrapeRequests sums client-go's rest_client_requests_total of the manager by HTTP method, and reads the
// shim controller's reconcile count and time.
func scrapeRequests(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []string{"controller_runtime_reconcile_time_seconds_sum", "controller_runtime_reconcile_time_seconds_count",
			"go_memstats_heap_inuse_bytes", "workqueue_queue_duration_seconds_sum", "workqueue_queue_duration_seconds_count"} {
			if strings.HasPrefix(line, m+`{controller="shim"`) || strings.HasPrefix(line, m+" ") {
				v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
				if err != nil {
					return nil, fmt.Errorf("parse %q: %w", line, err)
				}
				out[m] = v
			}
		}
		// Mean request latency by verb: rest_client_request_duration_seconds_{sum,count}{host=...,verb=...}.
		for _, suffix := range []string{"_sum", "_count"} {
			prefix := "rest_client_request_duration_seconds" + suffix + "{"
			if i := strings.Index(line, `verb="`); strings.HasPrefix(line, prefix) && i > 0 {
				verb := line[i+len(`verb="`):]
				verb = verb[:strings.Index(verb, `"`)]
				v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
				if err != nil {
					return nil, fmt.Errorf("parse %q: %w", line, err)
				}
				out["latency"+suffix+"_"+verb] += v
			}
		}
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		i := strings.Index(line, `method="`)
		j := strings.LastIndex(line, " ")
		if i < 0 || j < 0 {
			continue
		}
		method := line[i+len(`method="`):]
		method = method[:strings.Index(method, `"`)]
		v, err := strconv.ParseFloat(line[j+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out[method] += v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no rest_client_requests_total in /metrics")
	}
	return out, sc.Err()
}

// peakRSSMiB reads a process's peak resident set size so far (VmHWM) in MiB.
func peakRSSMiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
