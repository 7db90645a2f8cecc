package platform

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/containerd/platforms"
	specs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is an OS/architecture/variant triple, e.g. linux/arm/v7.
type Platform struct {
	OS           string
	Architecture string
	Variant      string
}

// Host returns the platform this binary runs on: runtime.GOOS and runtime.GOARCH, with
// the GOARM level it was built for as the variant on 32-bit arm (v7 when unknown).
func Host() Platform {
	p := Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm" {
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
				}
			}
		}
	}
	return p
}

// ForNode returns the platform the installer fetches for on a node that reports only os and arch (a
// Kubernetes node's status.nodeInfo.operatingSystem and architecture): normalized, so with the
// default variant of its architecture (arm: v7), which is what Host reports for an installer built
// without GOARM. An empty arch (not reported yet) stays empty.
func ForNode(os, arch string) Platform {
	if arch == "" {
		return Platform{OS: os}
	}
	return Platform{OS: os, Architecture: arch}.Normalize()
}

// Parse parses "os/arch" or "os/arch/variant", e.g. "linux/arm64" or "linux/arm/v7".
func Parse(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("parse platform %q: want os/arch or os/arch/variant, e.g. linux/arm64", s)
	}
	for _, part := range parts {
		if part == "" || strings.TrimSpace(part) != part {
			return Platform{}, fmt.Errorf("parse platform %q: empty or padded component", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Architecture
	}
	return p.OS + "/" + p.Architecture + "/" + p.Variant
}

// Normalize returns p in containerd's canonical form (github.com/containerd/platforms.Normalize):
// lower case, architecture aliases mapped to Go names (x86_64 -> amd64, aarch64 -> arm64, armhf ->
// arm/v7, ...), and default variants made explicit or dropped (arm64/v8 -> arm64, amd64/v1 -> amd64,
// arm -> arm/v7).
func (p Platform) Normalize() Platform {
	n := platforms.Normalize(p.spec())
	return Platform{OS: n.OS, Architecture: n.Architecture, Variant: n.Variant}
}

func (p Platform) spec() specs.Platform {
	return specs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// Match picks the entry of available that best serves want, with containerd's rules
// (platforms.Only): normalized platforms, an exact variant first, else the highest lower variant that
// still runs (an arm/v7 node can use arm/v6; an amd64/v3 node can use amd64/v2, then amd64); among
// equals the first. Unlike containerd, which also lets an arm64 node pull arm images and an amd64
// node 386 ones, the architecture must be the node's own: a shim binary for the 32-bit userland would
// need compatibility support that a node need not have. It returns the index in available, or -1 when
// nothing fits.
func Match(available []Platform, want Platform) int {
	w := want.Normalize()
	m := platforms.Only(w.spec())
	best := -1
	for i, a := range available {
		c := a.Normalize()
		if c.OS != w.OS || c.Architecture != w.Architecture || !m.Match(c.spec()) {
			continue
		}
		if best < 0 || m.Less(c.spec(), available[best].Normalize().spec()) {
			best = i
		}
	}
	return best
}
