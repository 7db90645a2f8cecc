package scale

import (
	"bufio"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/kwoktest"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

var (
	sizes  = flag.String("sizes", "", "node counts for TestBenchScale, e.g. \"1000 5000\" (empty: skip the benchmark)")
	kcmQPS = flag.Int("kcm-qps", 500, "kube-controller-manager --kube-api-qps for the benchmark (its default is 20)")
	// profileDir makes the benchmark save the manager's CPU profile of the first -profile-seconds of each
	// rollout and its heap profile at the end, as <dir>/<nodes>-cpu.pprof and <dir>/<nodes>-heap.pprof.
	profileDir     = flag.String("profile-dir", "", "save manager CPU and heap profiles of each rollout here")
	profileSeconds = flag.Int("profile-seconds", 20, "length of the CPU profile with -profile-dir")
)

const namespace = "wasmkube-system"

func TestMain(m *testing.M) {
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // envtest logs through controller-runtime; the manager runs as its own process
	os.Exit(m.Run())
}

// TestScaleSmoke rolls one Shim out to 50 KWOK nodes (half arm64) with maxUnavailable 10% through the
// manager binary, and checks that every node ends ready. It asserts no figures.
func TestScaleSmoke(t *testing.T) {
	env := setup(t, 50, 0)
	res := env.rollout(t)
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
		if ev.Reason == v1alpha1.ReasonInstalled && ev.Regarding.Name == "bench" {
			installed++
		}
	}
	if installed != 50 {
		t.Errorf("%d %s Events about Shim bench, want one per node (50)", installed, v1alpha1.ReasonInstalled)
	}
	t.Logf("50 nodes: rollout %s, manager RSS %d MiB, CPU %.1fs", res.wall.Round(100*time.Millisecond), res.rssMiB, res.cpu.Seconds())
}

// TestBenchScale prints the benchmark table for each size in -sizes.
func TestBenchScale(t *testing.T) {
	if *sizes == "" {
		t.Skip("no -sizes given (make bench-scale N=\"1000 5000\")")
	}
	var rows []row
	for _, f := range strings.Fields(*sizes) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			t.Fatalf("-sizes: %q is not a node count", f)
		}
		env := setup(t, n, *kcmQPS)
		r := row{n: n}
		// The CPU of each run is taken before its Jobs are deleted: the cleanup is no run's work.
		cpu := childCPU()
		r.job = env.plainJob(t)
		r.jobCPU = childCPU().since(cpu)
		env.deleteJobs()
		cpu = childCPU()
		r.jobs = env.perNodeJobs(t)
		r.jobsCPU = childCPU().since(cpu)
		env.deleteJobs()
		cpu = childCPU()
		r.rollout = env.rollout(t)
		r.rolloutCPU = childCPU().since(cpu)
		env.stop()
		rows = append(rows, r)
	}
	printTable(rows, *kcmQPS)
}

type row struct {
	n       int
	rollout result
	// job is the wall time of the plain Job; jobs that of one single-pod Job per node at the same
	// parallelism, the floor for any design with a Job per node.
	job, jobs time.Duration
	// jobCPU, jobsCPU and rolloutCPU are the control plane's CPU during each run.
	jobCPU, jobsCPU, rolloutCPU cpuTimes
}

type result struct {
	wall   time.Duration
	ready  int
	rssMiB int64
	cpu    time.Duration
	// requests maps HTTP methods to the requests the manager made, plus the shim controller's
	// reconcile count and total seconds and the Go heap in use at the end, under their metric names.
	requests map[string]float64
}

func printTable(rows []row, qps int) {
	fmt.Printf("\nwasmkube manager rollout on KWOK nodes (half arm64), maxUnavailable 10%%, installer pods finish after ~1 s, kube-controller-manager --kube-api-qps=%d\n", qps)
	fmt.Printf("plain Job: one Job, N completions, parallelism N/10; Job per node: N single-pod Jobs, N/10 at a time (no manager)\n")
	fmt.Printf("%7s %9s %10s %11s %7s %9s %9s %9s %8s %6s %6s %6s %6s %6s %12s %11s %9s\n",
		"nodes", "rollout", "plain Job", "Job/node", "ratio", "floor", "RSS MiB", "heap MiB", "CPU s", "GET/n", "POST/n", "PATCH/n", "PUT/n", "DEL/n", "writes/node",
		"reconciles", "avg ms")
	var ratio1000 string
	for _, r := range rows {
		ratio := r.rollout.wall.Seconds() / r.job.Seconds()
		per := func(m string) float64 { return r.rollout.requests[m] / float64(r.n) }
		writes := per("POST") + per("PATCH") + per("PUT") + per("DELETE")
		count := r.rollout.requests["controller_runtime_reconcile_time_seconds_count"]
		avg := 1000 * r.rollout.requests["controller_runtime_reconcile_time_seconds_sum"] / max(count, 1)
		fmt.Printf("%7d %8.1fs %9.1fs %10.1fs %7.2f %9.2f %9d %9.0f %8.1f %6.2f %6.2f %6.2f %6.2f %6.2f %12.2f %11.0f %9.1f\n",
			r.n, r.rollout.wall.Seconds(), r.job.Seconds(), r.jobs.Seconds(), ratio, r.jobs.Seconds()/r.job.Seconds(), r.rollout.rssMiB,
			r.rollout.requests["go_memstats_heap_inuse_bytes"]/(1<<20), r.rollout.cpu.Seconds(),
			per("GET"), per("POST"), per("PATCH"), per("PUT"), per("DELETE"), writes, count, avg)
		if r.n == 1000 {
			ratio1000 = fmt.Sprintf("%.2f", ratio)
		}
	}
	fmt.Printf("(ratio: rollout / plain Job; floor: Job per node / plain Job)\n")
	fmt.Printf("\ncontrol-plane CPU seconds, plain Job / Job per node / rollout (the manager's own CPU is in the table above)\n%7s", "nodes")
	for _, c := range components {
		fmt.Printf(" %23s", c)
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("%7d", r.n)
		for _, c := range components {
			fmt.Printf(" %6.1f / %6.1f / %6.1f", r.jobCPU[c].Seconds(), r.jobsCPU[c].Seconds(), r.rolloutCPU[c].Seconds())
		}
		fmt.Println()
	}
	if ratio1000 == "" {
		ratio1000 = "n/a (1000 not among the sizes)"
	}
	fmt.Printf("rollout/job ratio at 1000 nodes: %s\n", ratio1000)
}

type env struct {
	t       *testing.T
	n       int
	cluster *kwoktest.Cluster
	c       client.Client
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
	cfg := *e.cluster.Config
	cfg.QPS, cfg.Burst = 500, 1000
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	if e.c, err = client.New(&cfg, client.Options{Scheme: scheme}); err != nil {
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
		return e.c.Create(ctx, kwoktest.Node(fmt.Sprintf("node-%05d", i), arch, map[string]string{"pool": "bench"}, nil))
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

// forEach calls fn for 0..n-1 on up to workers goroutines and returns the first error.
func forEach(n, workers int, fn func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}

// plainJob runs one Job with N completions at the rollout's parallelism (10%) and returns its wall time.
func (e *env) plainJob(t *testing.T) time.Duration {
	t.Helper()
	ctx := context.Background()
	par := int32(max(e.n/10, 1))
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "baseline", Namespace: namespace},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(int32(e.n)), Parallelism: &par, BackoffLimit: ptr.To(int32(e.n)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				// Like the installer's pods: tolerate every taint (API-created nodes keep not-ready taints here).
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "installer", Image: "wasmkube/node-installer:bench"}},
			}},
		},
	}
	start := time.Now()
	if err := e.c.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 60*time.Minute, false, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(job), job); err != nil {
			return false, err
		}
		return jobComplete(job), nil
	})
	if err != nil {
		t.Fatalf("baseline Job: %v (status %+v)", err, job.Status)
	}
	return time.Since(start)
}

// perNodeJobs runs one single-pod Job per node, pinned to it like the installer's, keeping N/10 of them
// unfinished at a time, and returns the wall time until all completed. No manager runs: this is the
// control plane's own cost of a Job per node.
func (e *env) perNodeJobs(t *testing.T) time.Duration {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(e.cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	jobs := cs.BatchV1().Jobs(namespace)
	opts := metav1.ListOptions{LabelSelector: "wasmkube.io/bench=per-node"}
	list, err := jobs.List(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A RetryWatcher, since the API server ends watches after a while.
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &toolscache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = opts.LabelSelector
			return jobs.Watch(ctx, o)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	slots := make(chan struct{}, max(e.n/10, 1))
	next := make(chan int)
	errs := make(chan error, 16)
	start := time.Now()
	var creators sync.WaitGroup
	for range 16 {
		creators.Go(func() {
			for i := range next {
				if err := e.c.Create(ctx, e.nodeJob(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	go func() {
		for i := range e.n {
			slots <- struct{}{}
			next <- i
		}
		close(next)
	}()
	done := map[string]bool{}
	for len(done) < e.n {
		select {
		case err := <-errs:
			t.Fatalf("create a per-node Job: %v", err)
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the Job watch ended after %d of %d Jobs", len(done), e.n)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watch the per-node Jobs: %v", apierrors.FromObject(ev.Object))
			}
			j, isJob := ev.Object.(*batchv1.Job)
			if !isJob || done[j.Name] || !jobComplete(j) {
				continue
			}
			done[j.Name] = true
			<-slots
		case <-time.After(10 * time.Minute):
			t.Fatalf("%d of %d per-node Jobs completed", len(done), e.n)
		}
	}
	wall := time.Since(start)
	creators.Wait()
	return wall
}

// nodeJob is a single-pod Job pinned to node i, shaped like the installer's.
func (e *env) nodeJob(i int) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("per-node-%05d", i), Namespace: namespace,
			Labels: map[string]string{"wasmkube.io/bench": "per-node"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(3)), TTLSecondsAfterFinished: ptr.To(int32(600)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, NodeName: fmt.Sprintf("node-%05d", i),
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "installer", Image: "wasmkube/node-installer:bench"}},
			}},
		},
	}
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

// rollout starts the manager binary, creates one Shim over all nodes with maxUnavailable 10%, waits until
// every node is ready, and stops the manager to read its resource usage and request counts.
func (e *env) rollout(t *testing.T) result {
	t.Helper()
	ctx := context.Background()
	metricsAddr := freeAddr(t)
	log, err := os.Create(filepath.Join(e.dir, "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	args := []string{"--installer-image=wasmkube/node-installer:bench", "--namespace=" + namespace,
		"--leader-elect=false", "--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0",
		"--handler-deadline=0"}
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

	shim := &v1alpha1.Shim{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: v1alpha1.ShimSpec{
			RuntimeType:  "io.containerd.wazero.v1",
			Source:       v1alpha1.ShimSource{Builtin: "wazero"},
			NodeSelector: map[string]string{},
			Rollout:      v1alpha1.RolloutSpec{MaxUnavailable: ptr.To(intstr.FromString("10%"))},
		},
	}
	start := time.Now()
	if err := e.c.Create(ctx, shim); err != nil {
		t.Fatal(err)
	}
	var profiled sync.WaitGroup
	if pprofAddr != "" {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			c, err := net.Dial("tcp", pprofAddr)
			if err == nil {
				c.Close()
			}
			return err == nil, nil
		})
		if err != nil {
			t.Fatalf("the manager's pprof endpoint %s did not come up: %v", pprofAddr, err)
		}
		query := fmt.Sprintf("profile?seconds=%d", *profileSeconds)
		profiled.Go(func() { e.saveProfile(pprofAddr, query, "cpu") })
		profiled.Go(func() { e.saveProfile("", query, "apiserver-cpu") })
	}
	var res result
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 60*time.Minute, false, func(ctx context.Context) (bool, error) {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(shim), shim); err != nil {
			return false, err
		}
		res.ready = int(shim.Status.Nodes.Ready)
		return res.ready == e.n || shim.Status.Nodes.Failed > 0, nil
	})
	res.wall = time.Since(start)
	if err != nil || res.ready != e.n {
		t.Fatalf("rollout to %d nodes: %v, status %+v (logs in %s)", e.n, err, shim.Status.Nodes, e.dir)
	}
	res.requests, err = scrapeRequests(metricsAddr)
	if err != nil {
		t.Fatalf("scrape manager metrics: %v", err)
	}
	if pprofAddr != "" {
		e.saveProfile(pprofAddr, "heap", "heap")
		profiled.Wait()
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	killed = true
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.rssMiB = ru.Maxrss / 1024
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res
}

// saveProfile downloads /debug/pprof/<query> into -profile-dir: from the manager at addr, or from the
// kube-apiserver when addr is "".
func (e *env) saveProfile(addr, query, kind string) {
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
		e.t.Errorf("get %s profile: %v", kind, err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(*profileDir, fmt.Sprintf("%d-%s.pprof", e.n, kind)), b, 0o644)
	}
	if err != nil {
		e.t.Errorf("save %s profile: %v", kind, err)
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
		for _, m := range []string{"controller_runtime_reconcile_time_seconds_sum", "controller_runtime_reconcile_time_seconds_count", "go_memstats_heap_inuse_bytes"} {
			if strings.HasPrefix(line, m+`{controller="shim"`) || strings.HasPrefix(line, m+" ") {
				v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
				if err != nil {
					return nil, fmt.Errorf("parse %q: %w", line, err)
				}
				out[m] = v
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

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
