// Package scale measures the manager against KWOK nodes on a real kube-apiserver, etcd,
// kube-controller-manager and kube-scheduler: the wall time of a rollout compared with the same
// parallelism through one plain Job, the manager's peak RSS and CPU time, and its API requests per node.
//
// `make test` runs TestScaleSmoke (50 nodes, correctness only). `make bench-scale N="1000 5000"` runs
// TestBenchScale, which prints a table; its last line is "rollout/job ratio at 1000 nodes: <number>".
package scale
