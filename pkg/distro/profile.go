package distro

import (
	"fmt"
	"path"
	"strings"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// ConfigMode says how the containerd configuration is changed.
type ConfigMode string

// Config modes.
const (
	// ModeInPlace edits the config file itself.
	ModeInPlace ConfigMode = "in-place"
	// ModeTemplate edits a k3s/rke2 Go template that the distribution renders into containerd's config.
	ModeTemplate ConfigMode = "template"
	// ModeDropIn writes a file of its own into a directory that the main config imports.
	ModeDropIn ConfigMode = "drop-in"
)

// Default install locations (DESIGN.md "Names").
const (
	DefaultShimDir   = "/opt/wasmkube/bin"
	DefaultStateFile = "/opt/wasmkube/state.json"
)

// TemplateSeed is the content a k3s/rke2 template starts from when it does not exist yet: the
// distribution's own base template, so that nothing of the stock configuration is frozen.
const TemplateSeed = "{{ template \"base\" . }}\n"

// Profile says how to configure containerd on one node. Paths are host paths (as seen on the node, not
// prefixed with the host root); callers join them with the host root.
type Profile struct {
	// Distro names the distribution: containerd, kind, minikube, kubeadm, aks, eks-al2, gke,
	// eks-al2023, k3s, k3d, rke2, microk8s, k0s, talos, bottlerocket, or custom (no distribution
	// detected, config path given).
	Distro string `json:"distro"`
	// Config is what to edit.
	Config ConfigTarget `json:"config"`
	// ShimDir is where shim binaries go.
	ShimDir string `json:"shimDir"`
	// StateFile is the installer's state file.
	StateFile string `json:"stateFile"`
	// Restart says how to make containerd load the new config.
	Restart Restart `json:"restart"`
	// CRISocket is containerd's CRI socket, e.g. /run/containerd/containerd.sock.
	CRISocket string `json:"criSocket"`
	// ContainerdMajor is containerd's major version (1 or 2) when known from the hint or the binary, else 0.
	ContainerdMajor int `json:"containerdMajor,omitempty"`
	// Unsupported is set when wasmkube cannot configure containerd on this host (a read-only root, a
	// configuration that the OS renders from its own settings): the installer changes nothing and
	// reports the node unsupported, never failed.
	Unsupported *Unsupported `json:"unsupported,omitempty"`
	// Evidence lists what was looked at and found, in order.
	Evidence []string `json:"evidence"`
}

// Unsupported says why a host cannot be configured, and what works there instead.
type Unsupported struct {
	// Reason is what on the host prevents the edit.
	Reason string `json:"reason"`
	// Override is the way the distribution's own documentation offers to add a runtime.
	Override string `json:"override"`
}

// String returns the reason and the override in one sentence.
func (u Unsupported) String() string { return u.Reason + "; instead, " + u.Override }

// ConfigTarget is the containerd configuration to edit.
type ConfigTarget struct {
	// Path is the file (in-place, template) or the directory (drop-in).
	Path string `json:"path"`
	// Mode says how to edit it.
	Mode ConfigMode `json:"mode"`
	// Version is, for in-place, the version read from the file (0 if the file is absent or was not
	// read); for template and drop-in, the config version of the distribution's base config.
	Version int `json:"version"`
	// Seed is the content to start from when a template does not exist yet.
	Seed string `json:"seed,omitempty"`
	// Imports is the main config that imports the directory (drop-in) or the file (Talos' cri.toml).
	Imports string `json:"imports,omitempty"`
}

// Restart says how containerd is restarted.
type Restart struct {
	// Method is the restart method.
	Method installerapi.RestartMethod `json:"method"`
	// Units are systemd unit candidates in order (e.g. k3s, k3s-agent); the first that exists is used.
	Units []string `json:"units,omitempty"`
	// Process is the process to signal, e.g. containerd, or k3s whose exit restarts the node container.
	Process string `json:"process,omitempty"`
}

// Hints come from the Node object or flags.
type Hints struct {
	// ContainerRuntimeVersion is node.status.nodeInfo.containerRuntimeVersion, e.g. "containerd://2.1.5-k3s1".
	// "containerd://Unknown", which the kubelet reports while containerd does not answer it (during a
	// restart), says nothing about the version and counts as no hint.
	ContainerRuntimeVersion string
	// Distro forces a distribution (flag or Shim override) instead of detecting it from markers.
	Distro string
}

// unknownContainerd is the kubelet's containerRuntimeVersion while containerd does not answer it.
const unknownContainerd = "containerd://Unknown"

// known returns the hints without a ContainerRuntimeVersion that says nothing (unknownContainerd).
func (h Hints) known() Hints {
	if h.ContainerRuntimeVersion == unknownContainerd {
		h.ContainerRuntimeVersion = ""
	}
	return h
}

// Overrides replace detected values for non-standard hosts (flags --containerd-config, --cri-socket,
// --restart, --restart-unit). Empty fields keep the detected value.
type Overrides struct {
	ConfigPath string
	CRISocket  string
	Restart    installerapi.RestartMethod
	Units      []string
}

func (o Overrides) empty() bool {
	return o.ConfigPath == "" && o.CRISocket == "" && o.Restart == "" && len(o.Units) == 0
}

// validate checks that paths are absolute host paths and the method is known.
func (o Overrides) validate() error {
	for _, p := range []struct{ flag, path string }{{"containerd config", o.ConfigPath}, {"CRI socket", o.CRISocket}} {
		if p.path != "" && !strings.HasPrefix(p.path, "/") {
			return fmt.Errorf("%s override %q: must be an absolute host path", p.flag, p.path)
		}
	}
	if o.Restart != "" {
		if _, err := installerapi.ParseRestartMethod(string(o.Restart)); err != nil {
			return err
		}
	}
	return nil
}

// clean returns o with its paths in canonical form.
func (o Overrides) clean() Overrides {
	if o.ConfigPath != "" {
		o.ConfigPath = path.Clean(o.ConfigPath)
	}
	if o.CRISocket != "" {
		o.CRISocket = path.Clean(o.CRISocket)
	}
	return o
}

// WithOverrides returns p with the non-empty fields of o applied and noted in the evidence. It does no
// I/O: when the config path of an in-place target changes, Config.Version becomes 0 (not read); use
// DetectWithOverrides to read it from the new file. Units imply the systemd method unless o.Restart
// says otherwise; a signal restart keeps the detected process, or "containerd".
func (p Profile) WithOverrides(o Overrides) Profile {
	p.Evidence = append([]string(nil), p.Evidence...)
	if o.ConfigPath != "" && o.ConfigPath != p.Config.Path {
		p.Config.Path = o.ConfigPath
		if p.Config.Mode == ModeInPlace {
			p.Config.Version = 0
		}
		p.Evidence = append(p.Evidence, fmt.Sprintf("override: containerd config %s (%s)", o.ConfigPath, p.Config.Mode))
	}
	if o.CRISocket != "" {
		p.CRISocket = o.CRISocket
		p.Evidence = append(p.Evidence, "override: CRI socket "+o.CRISocket)
	}
	method := o.Restart
	if method == "" && len(o.Units) > 0 {
		method = installerapi.RestartSystemd
	}
	if method != "" {
		r := Restart{Method: method}
		switch method {
		case installerapi.RestartSystemd:
			r.Units = o.Units
			if len(r.Units) == 0 && p.Restart.Method == installerapi.RestartSystemd {
				r.Units = p.Restart.Units
			}
			if len(r.Units) == 0 {
				r.Units = []string{"containerd"}
			}
		case installerapi.RestartSignal:
			r.Process = p.Restart.Process
			if r.Process == "" {
				r.Process = "containerd"
			}
		}
		p.Restart = r
		p.Evidence = append(p.Evidence, "override: restart "+describeRestart(r))
	}
	return p
}

func describeRestart(r Restart) string {
	switch r.Method {
	case installerapi.RestartSystemd:
		return "systemd unit " + strings.Join(r.Units, " or ")
	case installerapi.RestartSignal:
		return "signal process " + r.Process
	}
	return string(r.Method)
}
