package rollout

import (
	"slices"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// Selected reports whether a node with these labels and annotations is selected by a Shim's nodeSelector:
// nil selects nodes annotated wasmkube.io/enabled=true, an empty map selects every node, and labels select
// the nodes carrying all of them. wasmkube.io/enabled=false opts a node out of every Shim.
func Selected(selector map[string]string, labels, annotations map[string]string) bool {
	switch annotations[v1alpha1.EnabledAnnotation] {
	case "false":
		return false
	case "true":
		if selector == nil {
			return true
		}
	default:
		if selector == nil {
			return false
		}
	}
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Platform is an OS/architecture pair as nodes report it (status.nodeInfo).
type Platform struct {
	OS   string
	Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// BuiltinPlatforms are the platforms the installer image ships built-in shims for.
var BuiltinPlatforms = []Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}

// HTTPPlatforms lists the platforms an HTTP source offers.
func HTTPPlatforms(src *v1alpha1.HTTPSource) []Platform {
	out := make([]Platform, 0, len(src.Platforms))
	for _, p := range src.Platforms {
		os := p.OS
		if os == "" {
			os = "linux"
		}
		out = append(out, Platform{OS: os, Arch: p.Arch})
	}
	return out
}

// Supports reports whether platforms include the node platform p.
func Supports(platforms []Platform, p Platform) bool { return slices.Contains(platforms, p) }
