// Package scale measures the manager against KWOK nodes on a real kube-apiserver, etcd,
// kube-controller-manager and kube-scheduler: the wall time of a rollout compared with the Job-per-node
// floor (one single-pod Job per node, all created at once, no manager), the manager's peak RSS and CPU
// time, its API requests per node, and the control plane's CPU.
//
// `make test` runs TestScaleSmoke (50 nodes, correctness only). `make bench-scale N="1000 5000" RUNS=3`
// runs TestBenchScale: at each size, RUNS times back to back, the floor, the slow-start floor (the same
// Jobs created as slow start would, one more in flight per completion, still without a manager: what
// slow start costs by itself), a rollout with the chart's default rollout settings and one with
// maxUnavailable 100%. Its last two lines are
//
//	default-settings rollout at 1000 nodes: T s, Job-per-node floor F s, ratio X
//	rollout/floor ratio at 1000 nodes (maxUnavailable 100%): Y
//
// with medians over the runs (X and Y are medians of each run's ratio to the floor measured just before).
// Each run's line also gives when a quarter, half, three quarters and all nodes were done, and the
// manager's table its peak RSS over the rollout and before the Shim existed (the initial cache sync).
// BENCH_SCALE_FLAGS passes more flags: -profile-dir=DIR saves CPU profiles of the API server (floors
// and rollouts) and of the manager, and the timelines of nodes done; -chart=false and
// -slow-start-floor=false skip those measurements.
package scale
