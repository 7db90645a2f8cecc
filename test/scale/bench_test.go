package scale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// creators is how many Jobs the floor creates at once: as many as the manager's writers start nodes,
// so that the floor is not limited by its client more than a rollout is.
const creators = 64

// TestBenchScale measures, at each size in -sizes and -runs times back to back: the Job-per-node floor
// (one single-pod Job per node, all created at once, no manager), a rollout with the rollout settings
// of the chart's default Shim, and a rollout with maxUnavailable 100%. It prints each run, a table of
// medians, and last the two summary lines (medians; ratios are medians of each run's ratio
// to the floor measured just before it).
func TestBenchScale(t *testing.T) {
	if *sizes == "" {
		t.Skip("no -sizes given (make bench-scale N=\"1000 5000\")")
	}
	if *runs < 1 {
		t.Fatalf("-runs %d: want at least 1", *runs)
	}
	chart := chartRollout(t)
	all := v1alpha1.RolloutSpec{MaxUnavailable: ptr.To(intstr.FromString("100%")), MaxFailures: chart.MaxFailures}
	var benches []bench
	for _, f := range strings.Fields(*sizes) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			t.Fatalf("-sizes: %q is not a node count", f)
		}
		env := setup(t, n, *kcmQPS)
		b := bench{n: n}
		for i := range *runs {
			var r run
			// The CPU of each measurement is taken before its clean-up, which is no measurement's work.
			cpu := childCPU()
			var floorProg, slowProg *progress
			r.floor, floorProg = env.floor(t, false, "floor", i)
			r.floorCPU = childCPU().since(cpu)
			env.deleteJobs()
			if *withSlowFloor {
				r.slowFloor, slowProg = env.floor(t, true, "slow-start-floor", i)
				env.deleteJobs()
			}
			if *withChart {
				cpu = childCPU()
				r.chart = env.rollout(t, chart, "chart", i)
				r.chartCPU = childCPU().since(cpu)
				env.reset()
			}
			cpu = childCPU()
			r.all = env.rollout(t, all, "all", i)
			r.allCPU = childCPU().since(cpu)
			env.reset()
			chartRun := "not measured (-chart=false)"
			if *withChart {
				chartRun = fmt.Sprintf("%.1f s (ratio %.2f)", r.chart.wall.Seconds(), r.chartRatio())
			}
			slowRun := ""
			if *withSlowFloor {
				slowRun = fmt.Sprintf("; slow-start floor %.1f s (100%% rollout / it: %.2f; quartiles %s s)", r.slowFloor.Seconds(), r.allSlowRatio(),
					slowProg.quartiles(n))
			}
			fmt.Printf("%d nodes, run %d of %d: floor %.1f s (quartiles %s s); chart-default rollout %s; maxUnavailable 100%% rollout %.1f s (ratio %.2f; quartiles %s s)%s\n",
				n, i+1, *runs, r.floor.Seconds(), floorProg.quartiles(n), chartRun, r.all.wall.Seconds(), r.allRatio(), r.all.progress.quartiles(n), slowRun)
			b.runs = append(b.runs, r)
		}
		env.stop()
		benches = append(benches, b)
	}
	printBenches(benches, chart, *kcmQPS)
}

// chartRollout returns the rollout settings of the chart's default Shim (shims.wazero in values.yaml).
func chartRollout(t *testing.T) v1alpha1.RolloutSpec {
	t.Helper()
	path := filepath.Join("..", "..", "charts", "wasmkube", "values.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Shims map[string]struct {
			Enabled bool              `json:"enabled"`
			Spec    v1alpha1.ShimSpec `json:"spec"`
		} `json:"shims"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	s, ok := values.Shims["wazero"]
	if !ok || !s.Enabled {
		t.Fatalf("%s: shims.wazero is not an enabled Shim; the benchmark takes its rollout settings", path)
	}
	return s.Spec.Rollout
}

// bench is one size's measurements.
type bench struct {
	n    int
	runs []run
}

// run is one back-to-back measurement of the floor and the two rollouts.
type run struct {
	floor time.Duration
	// slowFloor is the floor with its Jobs created as slow start would (a diagnostic: what slow start
	// costs by itself, without a manager).
	slowFloor                  time.Duration
	chart, all                 result
	floorCPU, chartCPU, allCPU cpuTimes
}

func (r run) chartRatio() float64 { return r.chart.wall.Seconds() / r.floor.Seconds() }
func (r run) allRatio() float64   { return r.all.wall.Seconds() / r.floor.Seconds() }

// allSlowRatio is the 100% rollout against the slow-start floor: the manager's own overhead.
func (r run) allSlowRatio() float64 { return r.all.wall.Seconds() / r.slowFloor.Seconds() }

// median returns the median of f over the runs (the mean of the middle two for an even count).
func (b bench) median(f func(run) float64) float64 {
	v := make([]float64, len(b.runs))
	for i, r := range b.runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 0 {
		return (v[m-1] + v[m]) / 2
	}
	return v[m]
}

func printBenches(benches []bench, chart v1alpha1.RolloutSpec, qps int) {
	budget := "1 (the API default)"
	if chart.MaxUnavailable != nil {
		budget = chart.MaxUnavailable.String()
	}
	fmt.Printf("\nwasmkube rollouts on KWOK nodes (half arm64); installer pods finish ~1 s after they start; kube-controller-manager --kube-api-qps=%d\n", qps)
	fmt.Printf("floor: one single-pod Job per node, all created at once (%d at a time), no manager; chart default: maxUnavailable %s; medians of %d runs\n",
		creators, budget, *runs)
	fmt.Printf("%7s %9s %14s %7s %12s %7s %17s %12s\n", "nodes", "floor", "chart default", "ratio", "100% rollout", "ratio",
		"slow-start floor", "100%/it")
	for _, b := range benches {
		fmt.Printf("%7d %8.1fs %13.1fs %7.2f %11.1fs %7.2f %16.1fs %12.2f\n", b.n,
			b.median(func(r run) float64 { return r.floor.Seconds() }),
			b.median(func(r run) float64 { return r.chart.wall.Seconds() }), b.median(run.chartRatio),
			b.median(func(r run) float64 { return r.all.wall.Seconds() }), b.median(run.allRatio),
			b.median(func(r run) float64 { return r.slowFloor.Seconds() }), b.median(run.allSlowRatio))
	}
	fmt.Println("(slow-start floor: the floor's Jobs created as slow start would, one more in flight per completion; 100%/it is the manager's own overhead)")

	fmt.Printf("\nthe manager in each rollout (medians; RSS: peak, and peak before the Shim existed; ms: mean reconcile, workqueue wait, PATCH and POST latency)\n%7s %-13s %8s %9s %9s %7s %6s %6s %7s %6s %6s %12s %11s %7s %8s %8s %8s\n",
		"nodes", "rollout", "RSS MiB", "start MiB", "heap MiB", "CPU s", "GET/n", "POST/n", "PATCH/n", "PUT/n", "DEL/n", "writes/node", "reconciles", "avg ms",
		"queue ms", "PATCH ms", "POST ms")
	for _, b := range benches {
		for _, k := range []struct {
			name string
			res  func(run) result
		}{{"chart default", func(r run) result { return r.chart }}, {"100%", func(r run) result { return r.all }}} {
			if k.name == "chart default" && !*withChart {
				continue
			}
			m := func(f func(result) float64) float64 { return b.median(func(r run) float64 { return f(k.res(r)) }) }
			per := func(method string) float64 { return m(func(r result) float64 { return r.perNode(method, b.n) }) }
			count := func(r result) float64 { return r.requests["controller_runtime_reconcile_time_seconds_count"] }
			fmt.Printf("%7d %-13s %8.0f %9.0f %9.0f %7.1f %6.2f %6.2f %7.2f %6.2f %6.2f %12.2f %11.0f %7.1f %8.1f %8.1f %8.1f\n", b.n, k.name,
				m(func(r result) float64 { return float64(r.rssMiB) }), m(func(r result) float64 { return float64(r.startRSSMiB) }),
				m(func(r result) float64 { return r.requests["go_memstats_heap_inuse_bytes"] / (1 << 20) }),
				m(func(r result) float64 { return r.cpu.Seconds() }),
				per("GET"), per("POST"), per("PATCH"), per("PUT"), per("DELETE"),
				m(func(r result) float64 { return r.writesPerNode(b.n) }), m(count),
				m(func(r result) float64 {
					return 1000 * r.requests["controller_runtime_reconcile_time_seconds_sum"] / max(count(r), 1)
				}), m(result.queueMS), m(func(r result) float64 { return r.latencyMS("PATCH") }),
				m(func(r result) float64 { return r.latencyMS("POST") }))
		}
	}

	fmt.Printf("\ncontrol-plane CPU seconds (medians), floor / chart default / 100%% rollout\n%7s", "nodes")
	for _, c := range components {
		fmt.Printf(" %23s", c)
	}
	fmt.Println()
	for _, b := range benches {
		fmt.Printf("%7d", b.n)
		for _, c := range components {
			fmt.Printf(" %6.1f / %6.1f / %6.1f", b.median(func(r run) float64 { return r.floorCPU[c].Seconds() }),
				b.median(func(r run) float64 { return r.chartCPU[c].Seconds() }),
				b.median(func(r run) float64 { return r.allCPU[c].Seconds() }))
		}
		fmt.Println()
	}

	i := slices.IndexFunc(benches, func(b bench) bool { return b.n == 1000 })
	if i < 0 {
		fmt.Println("\n(no summary: 1000 is not among -sizes)")
		return
	}
	b := benches[i]
	if !*withChart {
		fmt.Printf("\nrollout/floor ratio at 1000 nodes (maxUnavailable 100%%): %.2f\n", b.median(run.allRatio))
		return
	}
	fmt.Printf("\ndefault-settings rollout at 1000 nodes: %.1f s, Job-per-node floor %.1f s, ratio %.2f\n",
		b.median(func(r run) float64 { return r.chart.wall.Seconds() }),
		b.median(func(r run) float64 { return r.floor.Seconds() }), b.median(run.chartRatio))
	fmt.Printf("rollout/floor ratio at 1000 nodes (maxUnavailable 100%%): %.2f\n", b.median(run.allRatio))
}

// floor creates one single-pod Job per node, pinned to it like the installer's, all at once with
// creators workers, and returns the wall time until every one completed. No manager runs: this is the
// control plane's own cost of a Job per node. With slowStart the Jobs are created as a slow-started
// rollout would start them, still without a manager: one, then one more in flight for every completion
// (1, 2, 4, ... at once). With -profile-dir it profiles the API server (tag and run name the profile).
func (e *env) floor(t *testing.T, slowStart bool, tag string, run int) (time.Duration, *progress) {
	t.Helper()
	ctx := context.Background()
	var profiled sync.WaitGroup
	if *profileDir != "" {
		profiled.Go(func() {
			e.saveProfile("", fmt.Sprintf("profile?seconds=%d", *profileSeconds), fmt.Sprintf("%d-%s-%d-apiserver-cpu", e.n, tag, run))
		})
	}
	defer profiled.Wait()

	next := make(chan int, e.n) // nodes whose Job may be created
	released := 1
	if !slowStart {
		released = e.n
	}
	for i := range released {
		next <- i
	}
	if released == e.n {
		close(next)
	}
	var mu sync.Mutex
	var createErr error
	var created sync.WaitGroup
	start := time.Now()
	prog := newProgress()
	for range creators {
		created.Go(func() {
			for i := range next {
				if err := e.c.Create(ctx, e.nodeJob(i)); err != nil {
					mu.Lock()
					createErr = errors.Join(createErr, err)
					mu.Unlock()
				}
			}
		})
	}
	done := map[string]bool{}
	err := e.watchUntil(ctx, &batchv1.JobList{}, &batchv1.Job{}, 30*time.Minute,
		[]client.ListOption{client.InNamespace(namespace), client.MatchingLabels{"wasmkube.io/bench": "per-node"}},
		func(ev watch.Event) (bool, error) {
			mu.Lock()
			err := createErr
			mu.Unlock()
			if err != nil {
				return false, err
			}
			j, ok := ev.Object.(*batchv1.Job)
			if !ok || done[j.Name] || !jobComplete(j) {
				return false, nil
			}
			done[j.Name] = true
			prog.record(len(done))
			// A completion frees its slot and widens the window by one.
			for k := 0; k < 2 && released < e.n; k++ {
				next <- released
				if released++; released == e.n {
					close(next)
				}
			}
			return len(done) == e.n, nil
		})
	wall := time.Since(start)
	if released < e.n {
		close(next)
	}
	created.Wait()
	if err != nil {
		t.Fatalf("%d of %d per-node Jobs completed: %v", len(done), e.n, err)
	}
	if err := prog.save(fmt.Sprintf("%d-%s-%d", e.n, tag, run)); err != nil {
		t.Error(err)
	}
	return wall, prog
}

// nodeJob is a single-pod Job pinned to node i, shaped like the installer's.
func (e *env) nodeJob(i int) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("per-node-%05d", i), Namespace: namespace,
			Labels: map[string]string{"wasmkube.io/bench": "per-node"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(int32(3)), TTLSecondsAfterFinished: ptr.To(int32(600)),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, NodeName: nodeName(i),
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				Containers:  []corev1.Container{{Name: "installer", Image: "wasmkube/node-installer:bench"}},
			}},
		},
	}
}
