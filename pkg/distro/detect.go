package distro

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// Detect inspects the host mounted at hostRoot and returns how to configure its containerd. The
// distribution is the first in the documented order (see the package documentation) whose markers
// exist, or hints.Distro when set. A host with none of them is ErrUnknown, listing what was looked
// for; a node whose runtime is not containerd is ErrNotContainerd; a config file that does not parse
// or declares an unknown version fails with pkg/containerdcfg's error, naming the file.
func Detect(hostRoot string, hints Hints) (Profile, error) {
	if hostRoot == "" {
		return Profile{}, errors.New("detect: no host root given")
	}
	if fi, err := os.Stat(hostRoot); err != nil {
		return Profile{}, fmt.Errorf("detect: host root: %w", err)
	} else if !fi.IsDir() {
		return Profile{}, fmt.Errorf("detect: host root %s is not a directory", hostRoot)
	}
	hints = hints.known()
	major, err := runtimeMajor(hints.ContainerRuntimeVersion)
	if err != nil {
		return Profile{}, fmt.Errorf("detect: %w", err)
	}
	d := &detector{fs: hostFS{root: hostRoot}, hints: hints, hintMajor: major}
	if hints.ContainerRuntimeVersion != "" {
		d.notef("node reports container runtime %s", hints.ContainerRuntimeVersion)
	}
	var p Profile
	if hints.Distro != "" {
		b, ok := builders()[hints.Distro]
		if !ok {
			return Profile{}, fmt.Errorf("detect: unknown distro %q: use one of %s", hints.Distro, strings.Join(Distros(), ", "))
		}
		d.notef("distro forced to %s", hints.Distro)
		p, err = b(d, hints.Distro)
	} else {
		p, err = d.detect()
	}
	if err == nil {
		err = d.err
	}
	if err != nil {
		return Profile{}, fmt.Errorf("detect on host root %s: %w", hostRoot, err)
	}
	p.Evidence = d.evidence
	return p, nil
}

// DetectWithOverrides detects the host, applies o (see Profile.WithOverrides), and reads the config
// version of an overridden in-place file. On a host where no distribution is found, a config path in o
// is enough: the profile is then "custom", editing that file in place.
func DetectWithOverrides(hostRoot string, hints Hints, o Overrides) (Profile, error) {
	if err := o.validate(); err != nil {
		return Profile{}, fmt.Errorf("detect: %w", err)
	}
	o = o.clean()
	p, err := Detect(hostRoot, hints)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknown) && o.ConfigPath != "":
		p, err = custom(hostRoot, hints, o)
		if err != nil {
			return Profile{}, err
		}
	default:
		return Profile{}, err
	}
	if o.empty() {
		return p, nil
	}
	changed := o.ConfigPath != "" && o.ConfigPath != p.Config.Path
	p = p.WithOverrides(o)
	if changed && p.Config.Mode == ModeInPlace {
		d := &detector{fs: hostFS{root: hostRoot}}
		cfg, err := d.readConfig(p.Config.Path)
		if err == nil {
			err = d.err
		}
		if err != nil {
			return Profile{}, fmt.Errorf("detect on host root %s: %w", hostRoot, err)
		}
		p.Config.Version = cfg.version
		p.Evidence = append(p.Evidence, d.evidence...)
	}
	return p, nil
}

// custom is the profile of a host without a known distribution whose config path was given.
func custom(hostRoot string, hints Hints, o Overrides) (Profile, error) {
	major, err := runtimeMajor(hints.known().ContainerRuntimeVersion)
	if err != nil {
		return Profile{}, fmt.Errorf("detect: %w", err)
	}
	d := &detector{fs: hostFS{root: hostRoot}, hintMajor: major}
	d.notef("no known distribution: using the given containerd config %s", o.ConfigPath)
	cfg, err := d.readConfig(o.ConfigPath)
	if err != nil {
		return Profile{}, fmt.Errorf("detect on host root %s: %w", hostRoot, err)
	}
	p := Profile{
		Distro:          "custom",
		Config:          ConfigTarget{Path: o.ConfigPath, Mode: ModeInPlace, Version: cfg.version},
		ShimDir:         DefaultShimDir,
		StateFile:       DefaultStateFile,
		Restart:         d.restart([]string{"containerd"}, "containerd"),
		CRISocket:       socketContainerd,
		ContainerdMajor: d.containerdMajor("/usr/bin/containerd", "/usr/local/bin/containerd"),
	}
	if d.err != nil {
		return Profile{}, fmt.Errorf("detect on host root %s: %w", hostRoot, d.err)
	}
	p.Evidence = d.evidence
	return p, nil
}

// detector carries one detection: the host, the hints, and the evidence gathered so far.
type detector struct {
	fs        hostFS
	hints     Hints
	hintMajor int
	evidence  []string
	// err is the first I/O error other than "does not exist"; Detect fails with it.
	err     error
	systemd *bool
}

func (d *detector) notef(format string, args ...any) {
	d.evidence = append(d.evidence, fmt.Sprintf(format, args...))
}

func (d *detector) keep(err error) {
	if err != nil && d.err == nil {
		d.err = err
	}
}

// exists reports whether host path p exists (following links inside the host root).
func (d *detector) exists(p string) bool {
	_, ok, err := d.fs.stat(p)
	d.keep(err)
	return ok
}

// firstExisting returns the first of paths that exists.
func (d *detector) firstExisting(paths []string) (string, bool) {
	for _, p := range paths {
		if d.exists(p) {
			return p, true
		}
	}
	return "", false
}

// detect walks the detection order and builds the profile of the first distribution found.
func (d *detector) detect() (Profile, error) {
	var none, lookedFor []string
	for _, def := range detectionOrder() {
		if m, ok := d.firstExisting(def.markers); ok {
			if d.externalRuntime(def.name) {
				d.notef("%s: found %s, but the node's runtime %s is not k3s' containerd (no -k3s suffix): %s uses an external runtime", def.name, m, d.hints.ContainerRuntimeVersion, def.name)
				none = append(none, def.name)
				continue
			}
			if len(none) > 0 {
				d.notef("ruled out %s", strings.Join(none, ", "))
			}
			d.notef("%s: found %s", def.name, m)
			return builders()[def.name](d, def.name)
		}
		none = append(none, def.name)
		lookedFor = append(lookedFor, fmt.Sprintf("%s (%s)", def.name, strings.Join(def.markers, ", ")))
	}
	msg := "looked for " + strings.Join(lookedFor, "; ")
	var flavours []string
	for _, f := range containerdFlavours() {
		if d.exists(f.marker) {
			flavours = append(flavours, fmt.Sprintf("%s (%s)", f.name, f.marker))
		}
	}
	if len(flavours) > 0 {
		msg += "; found " + strings.Join(flavours, ", ") + " but no containerd"
	}
	return Profile{}, fmt.Errorf("%w: %s; pass --distro, or --containerd-config for a non-standard host", ErrUnknown, msg)
}

// externalRuntime reports whether the runtime hint shows that a k3s or rke2 node does not use the
// containerd it embeds (their builds report versions like 2.1.5-k3s1), as with --container-runtime-endpoint.
func (d *detector) externalRuntime(distro string) bool {
	v := d.hints.ContainerRuntimeVersion
	return (distro == "k3s" || distro == "rke2") && v != "" && !strings.Contains(v, "-k3s")
}

// configFile is what detection needs from a containerd config file that is plain TOML.
type configFile struct {
	exists   bool
	version  int // containerdcfg.Version; 0 when the file is absent
	declared bool
	imports  []string
	disabled []string
}

// importsDir reports whether the config imports *.toml files of dir (an entry whose directory is dir).
func (c configFile) importsDir(dir string) bool {
	return slices.ContainsFunc(c.imports, func(imp string) bool { return filepath.Dir(imp) == dir })
}

// readConfig reads a containerd config file (not a template) and notes its version.
func (d *detector) readConfig(p string) (configFile, error) {
	data, ok, err := d.fs.readFile(p)
	if err != nil || !ok {
		if err == nil {
			d.notef("%s absent", p)
		}
		return configFile{}, err
	}
	v, err := containerdcfg.Version(data, containerdcfg.PatchOptions{})
	if err != nil {
		return configFile{}, fmt.Errorf("read config version of %s: %w", p, err)
	}
	var raw struct {
		Version         *int64   `toml:"version"`
		Imports         []string `toml:"imports"`
		DisabledPlugins []string `toml:"disabled_plugins"`
	}
	if err := toml.Unmarshal(data, &raw); err != nil {
		return configFile{}, fmt.Errorf("read imports of %s: %w", p, err)
	}
	c := configFile{exists: true, version: v, declared: raw.Version != nil, imports: raw.Imports, disabled: raw.DisabledPlugins}
	if c.declared {
		d.notef("%s declares version %d", p, v)
	} else {
		d.notef("%s declares no version (containerd reads it as version %d)", p, v)
	}
	return c, nil
}

// templateVersion reads the version a k3s/rke2 template declares, or returns def (the version of the
// distribution's base template) when it declares none or does not exist.
func (d *detector) templateVersion(p string, def int) (version int, exists bool, err error) {
	data, ok, err := d.fs.readFile(p)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		d.notef("%s absent: start it from the base template (version %d)", p, def)
		return def, false, nil
	}
	v, err := containerdcfg.Version(data, containerdcfg.PatchOptions{DefaultVersion: def})
	if err != nil {
		return 0, true, fmt.Errorf("read config version of template %s: %w", p, err)
	}
	d.notef("%s exists: version %d", p, v)
	return v, true, nil
}

// osRelease notes the host's /etc/os-release ID and VERSION_ID in the evidence.
func (d *detector) osRelease() {
	data, ok, err := d.fs.readFile("/etc/os-release")
	d.keep(err)
	if !ok {
		return
	}
	var id, version string
	for _, l := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(l, "=")
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = v
		case "VERSION_ID":
			version = v
		}
	}
	d.notef("/etc/os-release: ID=%s VERSION_ID=%s", id, version)
}

// containerdMajor returns containerd's major version from the runtime version hint, else from the
// first of binaries whose build information names a containerd module; 0 when unknown.
func (d *detector) containerdMajor(binaries ...string) int {
	if d.hintMajor != 0 {
		d.notef("containerd %d.x per the node's container runtime version", d.hintMajor)
		return d.hintMajor
	}
	for _, b := range binaries {
		major, detail, err := d.fs.binaryMajor(b)
		d.keep(err)
		if detail == "" {
			continue
		}
		d.notef("%s: %s", b, detail)
		if major != 0 {
			d.notef("containerd %d.x per %s", major, b)
			return major
		}
	}
	d.notef("containerd major version unknown (no runtime version hint, no readable binary)")
	return 0
}

// hasSystemd reports whether the host runs systemd (/run/systemd/system exists, as sd_booted checks).
func (d *detector) hasSystemd() bool {
	if d.systemd == nil {
		ok := d.exists("/run/systemd/system")
		d.systemd = &ok
		if ok {
			d.notef("found /run/systemd/system: the host runs systemd")
		} else {
			d.notef("no /run/systemd/system: the host does not run systemd")
		}
	}
	return *d.systemd
}

// unitDirs are where systemd unit files are installed, in systemd's precedence order.
func unitDirs() []string {
	return []string{"/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
}

// restart returns the systemd restart over units (those with a unit file on the host first) on a
// systemd host, else a signal to process.
func (d *detector) restart(units []string, process string) Restart {
	if !d.hasSystemd() {
		return Restart{Method: installerapi.RestartSignal, Process: process}
	}
	var found, rest []string
	for _, u := range units {
		var file string
		for _, dir := range unitDirs() {
			if p := dir + "/" + u + ".service"; d.exists(p) {
				file = p
				break
			}
		}
		if file != "" {
			d.notef("unit file %s", file)
			found = append(found, u)
		} else {
			rest = append(rest, u)
		}
	}
	return Restart{Method: installerapi.RestartSystemd, Units: append(found, rest...)}
}
