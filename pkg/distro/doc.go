// Package distro detects, from a node's root filesystem (the host root, /host inside the installer's
// Job pod), which Kubernetes distribution runs there and how its containerd must be configured and
// restarted. Detect returns a Profile: the containerd config target (a file edited in place, a k3s/rke2
// Go template, or a drop-in directory), the directory for shim binaries, the restart method, the CRI
// socket, and the evidence it used, in order, so that an operator can see why a node was classified.
//
// # Detection order
//
// The first distribution whose markers exist on the host wins; the order is fixed:
//
//  1. k0s        /etc/k0s/containerd.toml, /var/lib/k0s/bin/containerd, /usr/local/bin/k0s
//  2. microk8s   /var/snap/microk8s/current/args/containerd-template.toml, /snap/microk8s/current
//  3. rke2       /var/lib/rancher/rke2/agent/etc/containerd, /usr/local/bin/rke2, /usr/bin/rke2
//  4. k3s        /var/lib/rancher/k3s/agent/etc/containerd, /usr/local/bin/k3s, /bin/k3s
//     (reported as k3d when the host does not run systemd: k3s inside a container)
//  5. talos      /etc/cri/containerd.toml
//  6. bottlerocket /usr/bin/apiclient, /usr/share/templates/containerd-config-toml_k8s_containerd_sock
//  7. eks-al2023 /usr/bin/nodeadm, /etc/eks/nodeadm
//  8. containerd a stand-alone containerd (/etc/containerd/config.toml, /usr/bin/containerd,
//     /usr/local/bin/containerd, /run/containerd/containerd.sock), named after the first flavour
//     marker found: kind (/kind/version), minikube (/var/lib/minikube), eks-al2 (/etc/eks/bootstrap.sh),
//     aks (/etc/kubernetes/azure.json), gke (/home/kubernetes/bin), kubeadm
//     (/var/lib/kubelet/kubeadm-flags.env), else "containerd".
//
// k3s and rke2 are skipped when the node's runtime version hint lacks their "-k3s" build suffix: the
// kubelet then uses an external containerd (--container-runtime-endpoint).
//
// Embedded runtimes come first because such hosts may also carry a stand-alone containerd (Docker's)
// that the kubelet does not use. Hints.Distro skips the markers and builds that distribution's profile.
//
// # Versions
//
// The config version is read from the files (pkg/containerdcfg.Version), never guessed from the
// containerd release. The containerd major version (Profile.ContainerdMajor) comes from the node's
// containerRuntimeVersion hint, else from the Go build information of the distribution's containerd
// binary; it decides only what the files cannot: which k3s/rke2 template is read, and whether a drop-in
// is safe (containerd 1.x replaces a whole plugin table from an imported file instead of merging it).
//
// # Hosts that cannot be patched
//
// Talos and Bottlerocket generate containerd's configuration from their own settings and keep their
// root file system read-only. Their profiles say where the host would be patched (Talos:
// /etc/cri/conf.d/cri.toml, signal; Bottlerocket: /etc/containerd/config.toml, systemd; shims under
// /var/lib/wasmkube), and set Profile.Unsupported, with the reason and the route their documentation
// offers instead, when the host shows that mechanism: Talos' CRI configuration directory on a read-only
// file system, a Bottlerocket containerd config template rendered by its settings API.
//
// Paths in a Profile are host paths; callers join them with the host root. All file access here
// resolves symbolic links inside the host root, so an absolute link on the host never escapes it.
package distro
