// Package version says which build of wasmkube a binary is: every binary prints it for --version.
//
// The image build stamps the release version at link time (images.Compiler.Version):
//
//	go build -ldflags "-X github.com/wasmkube/wasmkube/internal/version.version=v0.1.0" ./cmd/manager
//
// Without it, the module version and VCS revision that the Go toolchain records are used.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Variable is the linker symbol that holds the stamped version (go build -ldflags -X Variable=v0.1.0).
const Variable = "github.com/wasmkube/wasmkube/internal/version.version"

// version is set by the linker; see Variable.
var version string

// Info describes a build.
type Info struct {
	// Version is the stamped release version, else the module version, else "devel".
	Version string
	// Revision is the VCS commit the binary was built from, when the toolchain recorded it.
	Revision string
	// Modified reports uncommitted changes in the build's working tree.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH of the binary.
	Platform string
}

// Get returns the running binary's build information.
func Get() Info {
	return fromBuildInfo(version, debug.ReadBuildInfo)
}

// fromBuildInfo fills an Info from a stamped version and the toolchain's build information.
func fromBuildInfo(stamped string, read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: stamped, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := read()
	if ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	return i
}

// String is the one-line form --version prints after the program's name, e.g.
// "v0.1.0 (commit 1a2b3c4d5e6f, go1.26.0, linux/amd64)".
func (i Info) String() string {
	commit := ""
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		commit = "commit " + rev
		if i.Modified {
			commit += "-dirty"
		}
		commit += ", "
	}
	return fmt.Sprintf("%s (%s%s, %s)", i.Version, commit, i.GoVersion, i.Platform)
}
