package distro

import (
	"fmt"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// rancher describes k3s or rke2: both run an embedded containerd whose config.toml they render at
// start from a Go template in <dataDir>/agent/etc/containerd. Releases with containerd 2.x read
// config-v3.toml.tmpl first (base template version 3), then config.toml.tmpl (version 2); releases with
// containerd 1.x read only config.toml.tmpl. Since early 2026 the base templates also import
// config-v3.toml.d/*.toml (or config.toml.d/*.toml) next to them.
type rancher struct {
	dataDir  string
	units    []string // server unit first
	process  string   // the supervisor to signal on a host without systemd
	binaries []string // containerd binaries whose build information gives the major version
}

func k3s() rancher {
	return rancher{
		dataDir:  "/var/lib/rancher/k3s",
		units:    []string{"k3s", "k3s-agent"},
		process:  "k3s",
		binaries: []string{"/var/lib/rancher/k3s/data/current/bin/containerd"},
	}
}

func rke2() rancher {
	return rancher{
		dataDir:  "/var/lib/rancher/rke2",
		units:    []string{"rke2-server", "rke2-agent"},
		process:  "rke2",
		binaries: []string{"/var/lib/rancher/rke2/bin/containerd"},
	}
}

// build returns the profile. Restarting the k3s/rke2 service (not containerd alone) is what makes
// it render the template again. k3s on a host without systemd is k3s in a container (k3d): signalling
// k3s ends the node container, which its restart policy starts again.
func (r rancher) build(d *detector, name string) (Profile, error) {
	etc := r.dataDir + "/agent/etc/containerd"
	rendered := etc + "/config.toml"
	rc, err := d.readConfig(rendered)
	if err != nil {
		return Profile{}, err
	}
	major := d.containerdMajor(r.binaries...)
	restart := d.restart(r.units, r.process)
	if name == "k3s" && d.hints.Distro == "" && restart.Method == installerapi.RestartSignal {
		name = "k3d"
		d.notef("k3s without systemd: k3d (k3s in a container)")
	}
	// containerd 2.x is known from the hint or binary, or implied by a rendered version-3 config.
	c2 := major == 2 || (major == 0 && rc.version >= 3)

	for _, dir := range []string{etc + "/config-v3.toml.d", etc + "/config.toml.d"} {
		if !rc.importsDir(dir) {
			continue
		}
		if c2 {
			d.notef("%s imports %s/*.toml and containerd 2.x merges imports: use a drop-in", rendered, dir)
			return profile(name, ConfigTarget{Path: dir, Mode: ModeDropIn, Version: rc.version, Imports: rendered},
				restart, socketK3s, major), nil
		}
		d.notef("%s imports %s/*.toml, but containerd 1.x (or not known to be 2.x) replaces whole plugin tables from imports: use the template", rendered, dir)
	}

	v3, v2 := etc+"/config-v3.toml.tmpl", etc+"/config.toml.tmpl"
	hasV3, hasV2 := d.exists(v3), d.exists(v2)
	var tmpl string
	var def int
	switch {
	case major == 1:
		tmpl, def = v2, 2
		if hasV3 {
			d.notef("%s is ignored by releases with containerd 1.x", v3)
		}
	case c2 && hasV3:
		tmpl, def = v3, 3
	case c2 && hasV2:
		tmpl, def = v2, 2
		d.notef("%s absent and %s present: it is the template in use", v3, v2)
	case c2:
		tmpl, def = v3, 3
	case rc.exists:
		tmpl, def = v2, 2
		d.notef("%s is version %d: rendered from %s (containerd 1.x, or the version-2 template)", rendered, rc.version, v2)
	case hasV2 && !hasV3:
		tmpl, def = v2, 2
		d.notef("only %s exists: every release reads it", v2)
	default:
		return Profile{}, fmt.Errorf("%w: %s has no rendered config.toml and the containerd version is unknown, so it is not clear whether %s reads config-v3.toml.tmpl or config.toml.tmpl: pass --container-runtime-version (the node's status.nodeInfo.containerRuntimeVersion)", ErrAmbiguous, etc, name)
	}
	version, exists, err := d.templateVersion(tmpl, def)
	if err != nil {
		return Profile{}, err
	}
	cfg := ConfigTarget{Path: tmpl, Mode: ModeTemplate, Version: version}
	if !exists {
		cfg.Seed = TemplateSeed
	}
	return profile(name, cfg, restart, socketK3s, major), nil
}
