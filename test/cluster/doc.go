// Package cluster starts and stops a real single-node Kubernetes cluster on this machine, from the
// binaries hack/tools.sh builds: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a
// kubelet, and containerd 2.x with runc and the CNI bridge, host-local and loopback plugins.
//
// Everything lives under one work directory, laid out like a node where the node installer expects it
// (WorkDir/host/etc/containerd/config.toml, WorkDir/host/run/containerd/containerd.sock, ...), so an
// installer pod that sees the real root at /host can be pointed at WorkDir/host. containerd runs under
// a supervisor that starts it again whenever it exits: the installer's `signal` restart strategy.
//
// Each cluster claims a slot under a host-wide lock: a bridge, pod and service subnets, ports, an
// iptables chain and a cgroup root of its own, so several clusters (and other tests' containerd
// daemons) run side by side. Every process starts in its own session and is recorded with its PID and
// start time in WorkDir/cluster.json, so Down works from another process (the localcluster CLI) and
// never signals a recycled PID. Down removes the pods, stops every process, unmounts what is left
// under the work directory, deletes the bridge, the iptables chain and the kubelet's cgroup tree,
// and removes the work directory. What kubelets change host-wide (sysctls, iptables chains, fixed
// directories) is recorded before the first local cluster's kubelet starts and restored after the
// last one stops (BaselineFile).
package cluster
