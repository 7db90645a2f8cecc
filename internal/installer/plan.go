package installer

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// plan is what an install would do, computed from the host without changing it.
type plan struct {
	spec    Spec
	binPath string
	cfgFile string
	version int
	runtime containerdcfg.Runtime

	current []byte // configuration file now
	exists  bool
	perm    fs.FileMode
	desired []byte // configuration file after the install

	state *State
	entry *Entry // nil when the handler has no entry
}

func (p *plan) configChanges() bool { return !p.exists || !bytes.Equal(p.current, p.desired) }

func (in *Installer) plan(spec Spec) (*plan, error) {
	t := in.Profile
	if err := in.validateProfile(); err != nil {
		return nil, err
	}
	if spec.Shim == "" || spec.Handler == "" {
		return nil, fmt.Errorf("%w: shim name and handler are required", ErrInvalid)
	}
	bin, err := BinaryName(spec.Handler, spec.RuntimeType)
	if err != nil {
		return nil, err
	}
	p := &plan{spec: spec, binPath: path.Join(t.ShimDir, bin), cfgFile: in.configFile(spec.Handler), perm: 0o644}
	files := in.Host.Files
	if p.state, err = loadState(files, t.StateFile); err != nil {
		return nil, fail(installerapi.ReasonStateFailed, err)
	}
	p.entry = p.state.Shims[spec.Handler]
	if e := p.entry; e != nil && e.Shim != spec.Shim {
		return nil, fail(installerapi.ReasonHandlerConflict, fmt.Errorf("handler %s on this node belongs to Shim %s (state file %s); Shim %s cannot take it over: give it another handler, or uninstall Shim %s first",
			spec.Handler, e.Shim, t.StateFile, spec.Shim, e.Shim))
	}
	if e := p.state.binaryUser(spec.Handler, p.binPath); e != nil {
		return nil, fail(installerapi.ReasonHandlerConflict, fmt.Errorf("shim binary %s is in use by handler %s of Shim %s (installed by an older installer, which named binaries by runtime type only); reinstall Shim %s first, which moves it to a binary of its own",
			p.binPath, e.Handler, e.Shim, e.Shim))
	}
	if p.current, p.exists, err = readOptional(files, p.cfgFile); err != nil {
		return nil, fail(installerapi.ReasonConfigWriteFailed, fmt.Errorf("read containerd config %s: %w", p.cfgFile, err))
	}
	if p.exists {
		if fi, err := files.Stat(p.cfgFile); err == nil {
			p.perm = fi.Mode().Perm()
		}
	}
	opts := in.patchOptions()
	base := p.current
	switch {
	case t.Config.Mode == distro.ModeDropIn:
		p.version = t.Config.Version
	case !p.exists && t.Config.Mode == distro.ModeTemplate:
		base = []byte(t.Config.Seed)
		fallthrough
	case p.exists:
		if p.version, err = containerdcfg.Version(base, opts); err != nil {
			return nil, fail(configReason(err), fmt.Errorf("containerd config %s left untouched: %w", p.cfgFile, err))
		}
	default:
		return nil, fail(installerapi.ReasonConfigUnparseable, fmt.Errorf("containerd config %s does not exist; "+
			"point --containerd-config at the file containerd loads (write `containerd config default` there first if it runs on built-in defaults)", p.cfgFile))
	}
	// runtime_type is the binary's absolute path on every containerd version (see the package documentation).
	p.runtime = containerdcfg.Runtime{Handler: spec.Handler, Type: p.binPath, Options: spec.Options}
	if t.Config.Mode == distro.ModeDropIn {
		p.desired, err = containerdcfg.DropIn(p.version, p.runtime)
	} else {
		p.desired, err = containerdcfg.AddRuntime(base, p.runtime, opts)
	}
	if errors.Is(err, containerdcfg.ErrContainerdVersion) {
		err = fmt.Errorf("%w; pass --container-runtime-version (the node's status.nodeInfo.containerRuntimeVersion, e.g. containerd://2.1.5)", err)
	}
	if err != nil {
		return nil, fail(configReason(err), fmt.Errorf("containerd config %s left untouched: %w", p.cfgFile, err))
	}
	return p, nil
}

// DryRun describes what Install would do, with the configuration diff, and changes nothing.
func (in *Installer) DryRun(spec Spec) (string, error) {
	p, err := in.plan(spec)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "distro:          %s\n", in.Profile.Distro)
	fmt.Fprintf(&b, "config:          %s (%s, version %d)\n", p.cfgFile, in.Profile.Config.Mode, p.version)
	fmt.Fprintf(&b, "binary:          %s\n", p.binPath)
	fmt.Fprintf(&b, "runtime_type:    %s\n", p.runtime.Type)
	fmt.Fprintf(&b, "state file:      %s\n", in.Profile.StateFile)
	if p.entry != nil {
		fmt.Fprintf(&b, "recorded:        phase %s, spec hash %q\n", p.entry.Phase, p.entry.SpecHash)
	}
	restart := "no (configuration unchanged)"
	if p.configChanges() {
		restart = "yes (configuration changes)"
	} else if p.entry != nil && p.entry.NeedRestart {
		restart = "yes (owed by an interrupted run)"
	}
	fmt.Fprintf(&b, "restart:         %s\n", restart)
	b.WriteString("steps:           fetch and verify binary, write config if changed, restart if needed (binary synced and placed meanwhile unless identical), verify handler via CRI\n")
	if !p.configChanges() {
		b.WriteString("config diff:     none\n")
		return b.String(), nil
	}
	from, a := "a"+p.cfgFile, difflib.SplitLines(string(p.current))
	if !p.exists {
		from, a = "/dev/null", nil
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: a, B: difflib.SplitLines(string(p.desired)),
		FromFile: from, ToFile: "b" + p.cfgFile, Context: 3,
	})
	if err != nil {
		return "", fmt.Errorf("diff %s: %w", p.cfgFile, err)
	}
	b.WriteString("config diff:\n")
	b.WriteString(diff)
	return b.String(), nil
}
