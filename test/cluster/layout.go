package cluster

import "path/filepath"

// Layout names the files of a cluster under its work directory. Everything the node installer may
// look at sits below HostRoot at the place it has on a real node.
type Layout struct {
	WorkDir string
}

func (l Layout) path(elem ...string) string {
	return filepath.Join(append([]string{l.WorkDir}, elem...)...)
}

// HostRoot is the node-like root: WorkDir/host.
func (l Layout) HostRoot() string { return l.path("host") }

// ContainerdConfig is containerd's config file: HostRoot/etc/containerd/config.toml.
func (l Layout) ContainerdConfig() string { return l.path("host", "etc", "containerd", "config.toml") }

// ContainerdRoot is containerd's root directory (content, snapshots, metadata).
func (l Layout) ContainerdRoot() string { return l.path("host", "var", "lib", "containerd") }

// ContainerdState is containerd's state directory (runtime state, pod network namespaces).
func (l Layout) ContainerdState() string { return l.path("host", "run", "containerd") }

// CRISocket is containerd's gRPC (CRI) socket: HostRoot/run/containerd/containerd.sock.
func (l Layout) CRISocket() string { return l.path("host", "run", "containerd", "containerd.sock") }

// TTRPCSocket is containerd's ttrpc socket.
func (l Layout) TTRPCSocket() string { return l.CRISocket() + ".ttrpc" }

// RuncRoot is runc's state directory (the runc runtime's options.Root).
func (l Layout) RuncRoot() string { return l.path("host", "run", "containerd", "runc") }

// CNIConfDir holds the cluster's CNI conflist.
func (l Layout) CNIConfDir() string { return l.path("host", "etc", "cni", "net.d") }

// CNIDataDir holds host-local's IP leases.
func (l Layout) CNIDataDir() string { return l.path("host", "var", "lib", "cni", "networks") }

// KubeletRoot is the kubelet's --root-dir.
func (l Layout) KubeletRoot() string { return l.path("host", "var", "lib", "kubelet") }

// PodLogs is the kubelet's podLogsDir.
func (l Layout) PodLogs() string { return l.path("host", "var", "log", "pods") }

// VolumePluginDir is the kubelet's FlexVolume directory (which it would otherwise create in /usr).
func (l Layout) VolumePluginDir() string {
	return l.path("host", "usr", "libexec", "kubernetes", "kubelet-plugins", "volume", "exec")
}

// KubeletConfig is the kubelet's --config file.
func (l Layout) KubeletConfig() string { return l.path("kubelet.yaml") }

// PKI holds certificates, keys and the components' kubeconfigs.
func (l Layout) PKI() string { return l.path("pki") }

// EtcdData is etcd's data directory.
func (l Layout) EtcdData() string { return l.path("etcd") }

// Logs holds one log file per component (LogFile).
func (l Layout) Logs() string { return l.path("logs") }

// LogFile is the log of one component, e.g. LogFile("kubelet").
func (l Layout) LogFile(component string) string { return l.path("logs", component+".log") }

// Kubeconfig is the admin kubeconfig (system:masters) for users and tests.
func (l Layout) Kubeconfig() string { return l.path("kubeconfig") }

// State is the file recording the cluster (see State).
func (l Layout) State() string { return l.path("cluster.json") }
