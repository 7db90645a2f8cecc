package distro

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// containerd module paths, as recorded in a Go binary's build information.
const (
	modContainerd1 = "github.com/containerd/containerd"
	modContainerd2 = "github.com/containerd/containerd/v2"
)

// runtimeMajor parses a containerRuntimeVersion such as "containerd://2.1.5-k3s1" and returns the
// containerd major version; 0 for an empty string. Another runtime (docker://, cri-o://) is
// ErrNotContainerd.
func runtimeMajor(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	scheme, version, ok := strings.Cut(v, "://")
	if !ok {
		return 0, fmt.Errorf("container runtime version %q: want RUNTIME://VERSION, e.g. containerd://2.1.5", v)
	}
	if scheme != "containerd" {
		return 0, fmt.Errorf("%w: the node reports %s; wasmkube configures containerd only", ErrNotContainerd, v)
	}
	majorText, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	major, err := strconv.Atoi(majorText)
	if err != nil || major < 1 {
		return 0, fmt.Errorf("container runtime version %q: cannot read the containerd major version", v)
	}
	return major, nil
}

// buildMajor returns the containerd major version compiled into a binary, from its Go build
// information: the main module (a containerd build) or a dependency (k3s, rke2 and k0s embed or vendor
// containerd); 0 with a reason when it cannot tell.
func buildMajor(info *debug.BuildInfo) (major int, detail string) {
	if m := moduleMajor(info.Main); m != 0 {
		return m, fmt.Sprintf("main module %s %s", info.Main.Path, info.Main.Version)
	}
	switch {
	case strings.HasPrefix(info.Path, modContainerd2+"/"):
		return 2, "package " + info.Path
	case strings.HasPrefix(info.Path, modContainerd1+"/"):
		return 1, "package " + info.Path
	}
	// A binary that links containerd 2 may still carry a containerd 1 module for old API clients, so
	// the newest one decides.
	for _, want := range []int{2, 1} {
		for _, dep := range info.Deps {
			if moduleMajor(*dep) == want {
				return want, fmt.Sprintf("dependency %s %s", dep.Path, dep.Version)
			}
		}
	}
	return 0, "no containerd module in its build information"
}

func moduleMajor(m debug.Module) int {
	switch m.Path {
	case modContainerd2:
		return 2
	case modContainerd1:
		return 1
	}
	return 0
}

// binaryMajor reads the containerd major version from the Go build information of a host binary.
func (h hostFS) binaryMajor(p string) (major int, detail string, err error) {
	real, err := h.resolve(p)
	if err == nil {
		_, err = os.Stat(real)
	}
	if err != nil {
		if absent(err) {
			return 0, "", nil
		}
		return 0, "", fmt.Errorf("inspect %s under host root %s: %w", p, h.root, err)
	}
	info, err := buildinfo.ReadFile(real)
	if err != nil {
		return 0, "not a Go binary with build information", nil
	}
	major, detail = buildMajor(info)
	return major, detail, nil
}
