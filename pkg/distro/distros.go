package distro

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"sort"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// CRI sockets.
const (
	socketContainerd = "/run/containerd/containerd.sock"
	socketK3s        = "/run/k3s/containerd/containerd.sock" // k3s and rke2
	socketK0s        = "/run/k0s/containerd.sock"
	socketMicrok8s   = "/var/snap/microk8s/common/run/containerd.sock"
)

// distroDef is one step of the detection order: a distribution and the host paths that mark it.
type distroDef struct {
	name    string
	markers []string
}

// detectionOrder is the fixed order in which distributions are recognised (see the package documentation).
func detectionOrder() []distroDef {
	return []distroDef{
		{"k0s", []string{"/etc/k0s/containerd.toml", "/var/lib/k0s/bin/containerd", "/usr/local/bin/k0s"}},
		{"microk8s", []string{microk8sTemplate, "/snap/microk8s/current"}},
		{"rke2", []string{"/var/lib/rancher/rke2/agent/etc/containerd", "/usr/local/bin/rke2", "/usr/bin/rke2"}},
		{"k3s", []string{"/var/lib/rancher/k3s/agent/etc/containerd", "/usr/local/bin/k3s", "/bin/k3s"}},
		{"talos", []string{talosMain}},
		{"bottlerocket", []string{"/usr/bin/apiclient", path.Join(bottlerocketTemplates, bottlerocketTemplateNames()[0])}},
		{"eks-al2023", []string{"/usr/bin/nodeadm", "/etc/eks/nodeadm"}},
		{"containerd", []string{containerdConfig, "/usr/bin/containerd", "/usr/local/bin/containerd", socketContainerd}},
	}
}

// flavour names a stand-alone containerd host after the platform that set it up.
type flavour struct{ name, marker string }

// containerdFlavours are checked in order on a stand-alone containerd host; all share one profile.
func containerdFlavours() []flavour {
	return []flavour{
		{"kind", "/kind/version"},
		{"minikube", "/var/lib/minikube"},
		{"eks-al2", "/etc/eks/bootstrap.sh"},
		{"aks", "/etc/kubernetes/azure.json"},
		{"gke", "/home/kubernetes/bin"},
		{"kubeadm", "/var/lib/kubelet/kubeadm-flags.env"},
	}
}

type builder func(d *detector, name string) (Profile, error)

// builders maps every distribution name (including containerd flavours) to its profile builder.
func builders() map[string]builder {
	m := map[string]builder{
		"k0s":          buildK0s,
		"microk8s":     buildMicrok8s,
		"rke2":         rke2().build,
		"k3s":          k3s().build,
		"k3d":          k3s().build,
		"eks-al2023":   buildAL2023,
		"talos":        buildTalos,
		"bottlerocket": buildBottlerocket,
		"containerd":   buildContainerd,
	}
	for _, f := range containerdFlavours() {
		m[f.name] = buildContainerd
	}
	return m
}

// Distros lists the distribution names Hints.Distro accepts, sorted.
func Distros() []string {
	var names []string
	for n := range builders() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// profile fills the fields every distribution shares.
func profile(name string, cfg ConfigTarget, r Restart, socket string, major int) Profile {
	return Profile{
		Distro: name, Config: cfg, ShimDir: DefaultShimDir, StateFile: DefaultStateFile,
		Restart: r, CRISocket: socket, ContainerdMajor: major,
	}
}

const containerdConfig = "/etc/containerd/config.toml"

// criDisabled reports whether a config disables the CRI plugin (Docker's containerd does).
func criDisabled(c configFile) bool {
	return slices.ContainsFunc(c.disabled, func(p string) bool { return p == "cri" || p == "io.containerd.grpc.v1.cri" })
}

// buildContainerd: a stand-alone containerd (kubeadm, kind, minikube, AKS, EKS AL2, GKE) configured in
// place in /etc/containerd/config.toml and restarted through its systemd unit. Never a drop-in: on
// containerd 1.x an imported file replaces the whole CRI plugin table.
func buildContainerd(d *detector, name string) (Profile, error) {
	if name == "containerd" && d.hints.Distro == "" {
		for _, f := range containerdFlavours() {
			if d.exists(f.marker) {
				name = f.name
				d.notef("%s: found %s", f.name, f.marker)
				break
			}
		}
	}
	cfg, err := d.readConfig(containerdConfig)
	if err != nil {
		return Profile{}, err
	}
	if criDisabled(cfg) {
		return Profile{}, fmt.Errorf("%w: %s disables the CRI plugin (the containerd of a Docker engine?); pass --containerd-config and --cri-socket for the kubelet's runtime", ErrNotContainerd, containerdConfig)
	}
	major := d.containerdMajor("/usr/bin/containerd", "/usr/local/bin/containerd")
	return profile(name,
		ConfigTarget{Path: containerdConfig, Mode: ModeInPlace, Version: cfg.version},
		d.restart([]string{"containerd"}, "containerd"), socketContainerd, major), nil
}

// buildAL2023: EKS on Amazon Linux 2023. nodeadm renders /etc/containerd/config.toml at every boot and
// makes it import /etc/containerd/config.d/*.toml, so a drop-in survives where an in-place edit would
// not. A drop-in is only safe when containerd merges imports (2.x); on 1.x, or when the main config does
// not import the directory, the main config is edited in place.
func buildAL2023(d *detector, name string) (Profile, error) {
	const dir = "/etc/containerd/config.d"
	cfg, err := d.readConfig(containerdConfig)
	if err != nil {
		return Profile{}, err
	}
	major := d.containerdMajor("/usr/bin/containerd")
	r := d.restart([]string{"containerd"}, "containerd")
	inPlace := profile(name, ConfigTarget{Path: containerdConfig, Mode: ModeInPlace, Version: cfg.version}, r, socketContainerd, major)
	switch {
	case cfg.exists && !cfg.importsDir(dir):
		d.notef("%s does not import %s/*.toml: edit it in place (nodeadm may rewrite it at boot)", containerdConfig, dir)
		return inPlace, nil
	case major == 1 || (major == 0 && cfg.version < 3):
		d.notef("containerd 1.x (or not known to be 2.x) replaces the whole CRI table from an imported file: edit %s in place (nodeadm may rewrite it at boot)", containerdConfig)
		return inPlace, nil
	}
	version := cfg.version
	if version == 0 {
		version = 3
	}
	d.notef("containerd 2.x merges %s/*.toml into %s: use a drop-in", dir, containerdConfig)
	return profile(name, ConfigTarget{Path: dir, Mode: ModeDropIn, Version: version, Imports: containerdConfig}, r, socketContainerd, major), nil
}

// buildK0s: k0s imports /etc/k0s/containerd.d/*.toml into the containerd config it manages, merges
// CRI sections itself and reloads containerd; no restart. When the user took over
// /etc/k0s/containerd.toml (no "# k0s_managed=true" first line), drop-ins are not applied and that file
// is edited in place instead, and containerd is restarted by signal (k0s supervises it).
func buildK0s(d *detector, name string) (Profile, error) {
	const (
		main    = "/etc/k0s/containerd.toml"
		dir     = "/etc/k0s/containerd.d"
		cri     = "/run/k0s/containerd-cri.toml"
		managed = "# k0s_managed=true"
	)
	data, ok, err := d.fs.readFile(main)
	if err != nil {
		return Profile{}, err
	}
	major := d.containerdMajor("/var/lib/k0s/bin/containerd")
	first, _, _ := bytes.Cut(data, []byte("\n"))
	if ok && string(bytes.TrimSpace(first)) != managed {
		d.notef("%s is not k0s-managed (first line is not %q): drop-ins are not applied; edit it in place", main, managed)
		cfg, err := d.readConfig(main)
		if err != nil {
			return Profile{}, err
		}
		return profile(name, ConfigTarget{Path: main, Mode: ModeInPlace, Version: cfg.version},
			Restart{Method: installerapi.RestartSignal, Process: "containerd"}, socketK0s, major), nil
	}
	if ok {
		d.notef("%s is k0s-managed: it imports %s/*.toml", main, dir)
	}
	version := 0
	for _, p := range []string{cri, main} {
		cfg, err := d.readConfig(p)
		if err != nil {
			return Profile{}, err
		}
		if cfg.declared {
			version = cfg.version
			break
		}
	}
	if version == 0 {
		switch major {
		case 2:
			version = 3
		default:
			version = 2
			d.notef("no config declares a version: drop-ins use version 2, which containerd 1.x and 2.x read")
		}
	}
	return profile(name, ConfigTarget{Path: dir, Mode: ModeDropIn, Version: version, Imports: main},
		Restart{Method: installerapi.RestartNone}, socketK0s, major), nil
}

const microk8sTemplate = "/var/snap/microk8s/current/args/containerd-template.toml"

// buildMicrok8s: microk8s renders containerd's config from args/containerd-template.toml (a complete
// TOML file with ${SNAP} placeholders inside strings) when its containerd service starts; the snap's
// own files are read-only, so shims go to the snap's common dir.
func buildMicrok8s(d *detector, name string) (Profile, error) {
	const common = "/var/snap/microk8s/common"
	cfg, err := d.readConfig(microk8sTemplate)
	if err != nil {
		return Profile{}, err
	}
	major := d.containerdMajor("/snap/microk8s/current/bin/containerd")
	p := profile(name, ConfigTarget{Path: microk8sTemplate, Mode: ModeInPlace, Version: cfg.version},
		d.restart([]string{"snap.microk8s.daemon-containerd"}, "containerd"), socketMicrok8s, major)
	p.ShimDir = common + "/wasmkube/bin"
	p.StateFile = common + "/wasmkube/state.json"
	return p, nil
}
