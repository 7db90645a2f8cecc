package distro

import (
	"fmt"
	"path"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// Talos and Bottlerocket are image-based: their root file system is read-only and they generate
// containerd's configuration from their own settings. Shims and state go to /var, their writable data
// partition. Each profile says where the host would be patched; when the host shows the OS's own
// mechanism at work, the profile is Unsupported with the way the OS's documentation offers instead.
const (
	immutableShimDir   = "/var/lib/wasmkube/bin"
	immutableStateFile = "/var/lib/wasmkube/state.json"
)

// Talos runs the CRI's containerd with /etc/cri/containerd.toml, which imports /etc/cri/conf.d/cri.toml;
// machined renders that file from the CRI configuration parts and the machine configuration, and
// supervises the CRI containerd (a signal restarts it).
const (
	talosMain   = "/etc/cri/containerd.toml"
	talosConfig = "/etc/cri/conf.d/cri.toml"
)

// buildTalos edits /etc/cri/conf.d/cri.toml in place where its directory is writable. On a Talos node it
// is not: the root file system (the squashfs image) is read-only, and machined writes the file itself.
func buildTalos(d *detector, name string) (Profile, error) {
	d.osRelease()
	cfg, err := d.readConfig(talosConfig)
	if err != nil {
		return Profile{}, err
	}
	p := immutableProfile(name, ConfigTarget{Path: talosConfig, Mode: ModeInPlace, Version: cfg.version, Imports: talosMain},
		Restart{Method: installerapi.RestartSignal, Process: "containerd"}, d.containerdMajor("/usr/bin/containerd", "/bin/containerd"))
	ro, err := d.fs.readOnly(path.Dir(talosConfig))
	if err != nil {
		return Profile{}, err
	}
	if ro {
		d.notef("%s is on a read-only file system", path.Dir(talosConfig))
		p.Unsupported = &Unsupported{
			Reason: fmt.Sprintf("Talos mounts its root file system read-only (%s cannot take a new file) and machined renders %s from the machine configuration", path.Dir(talosConfig), talosConfig),
			Override: "add the runtime through the machine configuration: a CRICustomizationConfig document (on older Talos, a machine.files entry for /etc/cri/conf.d/20-customization.part) " +
				"holding its [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.<handler>] table, with the shim installed by a Talos system extension; Talos restarts the CRI itself",
		}
		return p, nil
	}
	d.notef("%s is writable: edit %s in place and signal the CRI containerd, which machined restarts (machined renders the file again when the machine configuration changes)", path.Dir(talosConfig), talosConfig)
	return p, nil
}

// Bottlerocket renders /etc/containerd/config.toml (on a tmpfs) from a template in /usr/share/templates
// with the values of its settings API, at every boot and settings change.
const (
	bottlerocketConfig    = "/etc/containerd/config.toml"
	bottlerocketTemplates = "/usr/share/templates"
)

// bottlerocketTemplateNames are the containerd config templates Bottlerocket variants ship.
func bottlerocketTemplateNames() []string {
	return []string{
		"containerd-config-toml_k8s_containerd_sock",
		"containerd-config-toml_k8s_nvidia_containerd_sock",
		"containerd-config-toml_basic",
	}
}

// buildBottlerocket edits /etc/containerd/config.toml in place and restarts containerd's unit, unless
// the settings API renders that file (a template for it exists), which is the case on every
// Bottlerocket variant.
func buildBottlerocket(d *detector, name string) (Profile, error) {
	d.osRelease()
	cfg, err := d.readConfig(bottlerocketConfig)
	if err != nil {
		return Profile{}, err
	}
	p := immutableProfile(name, ConfigTarget{Path: bottlerocketConfig, Mode: ModeInPlace, Version: cfg.version},
		d.restart([]string{"containerd"}, "containerd"), d.containerdMajor("/usr/bin/containerd"))
	for _, t := range bottlerocketTemplateNames() {
		tmpl := path.Join(bottlerocketTemplates, t)
		if !d.exists(tmpl) {
			continue
		}
		d.notef("%s exists: the settings API renders %s", tmpl, bottlerocketConfig)
		p.Unsupported = &Unsupported{
			Reason: fmt.Sprintf("Bottlerocket renders %s from its settings API (template %s) at every boot and settings change, and direct edits are not supported; its API has no setting for another runtime", bottlerocketConfig, tmpl),
			Override: "build a Bottlerocket variant whose containerd config template defines the runtime and which ships the shim (an out-of-tree variant build), " +
				"or leave these nodes out of the Shim's nodeSelector",
		}
		return p, nil
	}
	d.notef("no containerd config template under %s: edit %s in place", bottlerocketTemplates, bottlerocketConfig)
	return p, nil
}

func immutableProfile(name string, cfg ConfigTarget, r Restart, major int) Profile {
	p := profile(name, cfg, r, socketContainerd, major)
	p.ShimDir, p.StateFile = immutableShimDir, immutableStateFile
	return p
}
