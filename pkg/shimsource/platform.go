package shimsource

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Platform is an OS/architecture/variant triple, e.g. linux/arm/v7.
type Platform struct {
	OS           string
	Architecture string
	Variant      string
}

// HostPlatform returns the platform this binary runs on: runtime.GOOS and runtime.GOARCH, with
// the GOARM level it was built for as the variant on 32-bit arm (v7 when unknown).
func HostPlatform() Platform {
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

// ParsePlatform parses "os/arch" or "os/arch/variant", e.g. "linux/arm64" or "linux/arm/v7".
func ParsePlatform(s string) (Platform, error) {
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

// Normalize returns p in canonical form: lower case, common architecture aliases mapped to Go
// names (x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7, ...), and default variants made
// explicit or dropped the way containerd does (arm64/v8 -> arm64, amd64/v1 -> amd64, arm -> arm/v7).
func (p Platform) Normalize() Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "i386", "i686", "x86":
		p.Architecture = "386"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	switch p.Architecture {
	case "arm64":
		if p.Variant == "v8" {
			p.Variant = ""
		}
	case "amd64":
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "arm":
		if p.Variant == "" {
			p.Variant = "v7"
		}
	}
	return p
}

// level returns the numeric level of a "vN" variant for architectures whose variants are
// backwards compatible (arm, amd64), and false otherwise.
func (p Platform) level() (int, bool) {
	switch p.Architecture {
	case "arm", "amd64":
	default:
		return 0, false
	}
	if p.Variant == "" {
		return 1, p.Architecture == "amd64"
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v"))
	if err != nil || !strings.HasPrefix(p.Variant, "v") {
		return 0, false
	}
	return n, true
}

// Match picks the entry of available that best serves want, comparing normalized platforms:
// OS and architecture must be equal; the variant must be equal, except that on arm and amd64 a
// lower level also runs (an arm/v7 node can use arm/v6; an amd64/v3 node can use amd64). The
// highest compatible level wins; among equals the first. It returns the index in available, or
// -1 when nothing fits.
func Match(available []Platform, want Platform) int {
	w := want.Normalize()
	wantLevel, wantLeveled := w.level()
	best, bestLevel := -1, -1
	for i, a := range available {
		c := a.Normalize()
		if c.OS != w.OS || c.Architecture != w.Architecture {
			continue
		}
		if c.Variant == w.Variant {
			return i
		}
		l, ok := c.level()
		if !ok || !wantLeveled || l > wantLevel {
			continue
		}
		if l > bestLevel {
			best, bestLevel = i, l
		}
	}
	return best
}
