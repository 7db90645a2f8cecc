package rollout

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// builtinContainerd is what each builtin shim needs from containerd: wazero is built on containerd 2.x's
// shim API, which containerd 1.x refuses.
var builtinContainerd = map[string]string{"wazero": ">=2.0"}

// Requirements is a Shim's compiled spec.requirements, plus what its builtin source needs.
type Requirements struct {
	containerd []constraint
}

// constraint is one containerd version constraint and where it comes from.
type constraint struct {
	c    *semver.Constraints
	text string
	from string // "" for spec.requirements, else why it applies
}

// ParseRequirements compiles a Shim's requirements. An unparseable constraint is an error that says so.
func ParseRequirements(s *v1alpha1.Shim) (Requirements, error) {
	var r Requirements
	if t := strings.TrimSpace(s.Spec.Requirements.Containerd); t != "" {
		c, err := semver.NewConstraint(t)
		if err != nil {
			return Requirements{}, fmt.Errorf("spec.requirements.containerd %q is not a version constraint such as >=2.0 or >=1.7, <3: %w", t, err)
		}
		r.containerd = append(r.containerd, constraint{c: c, text: t})
	}
	if t, ok := builtinContainerd[s.Spec.Source.Builtin]; ok {
		c, err := semver.NewConstraint(t)
		if err != nil {
			panic(fmt.Sprintf("builtin requirement %q: %v", t, err)) // a constant of this package
		}
		r.containerd = append(r.containerd, constraint{c: c, text: t,
			from: "the builtin " + s.Spec.Source.Builtin + " shim needs it"})
	}
	return r, nil
}

// unknownVersion is the version the kubelet reports while the container runtime does not answer it, as
// during a containerd restart: containerRuntimeVersion "containerd://Unknown".
const unknownVersion = "Unknown"

// runtimeKnown reports whether a node's status.nodeInfo.containerRuntimeVersion says which runtime it
// runs: false while the kubelet has not reported it or could not ask the runtime (unknownVersion).
func runtimeKnown(containerRuntimeVersion string) bool {
	_, ver, _ := strings.Cut(containerRuntimeVersion, "://")
	return containerRuntimeVersion != "" && ver != unknownVersion
}

// Unmet says why a node whose status.nodeInfo.containerRuntimeVersion is runtime cannot take the Shim, or
// "" when it can or the runtime is not known now (see runtimeKnown). Only containerd qualifies; a
// version's pre-release part (a distribution suffix such as -k3s1) is ignored.
func (r Requirements) Unmet(runtime string) string {
	if !runtimeKnown(runtime) {
		return ""
	}
	name, ver, ok := strings.Cut(runtime, "://")
	if !ok || name != "containerd" {
		return fmt.Sprintf("the node's container runtime is %s, not containerd", runtime)
	}
	if len(r.containerd) == 0 {
		return ""
	}
	v, err := semver.NewVersion(strings.TrimPrefix(ver, "v"))
	if err != nil {
		return fmt.Sprintf("the node's containerd version %q cannot be read as a version", ver)
	}
	plain, _ := v.SetPrerelease("")
	for _, c := range r.containerd {
		if !c.c.Check(&plain) {
			why := fmt.Sprintf("containerd %s does not satisfy %s", ver, c.text)
			if c.from != "" {
				why += " (" + c.from + ")"
			}
			return why
		}
	}
	return ""
}
