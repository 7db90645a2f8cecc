package containerdtest

import (
	"bytes"
	"fmt"
	"text/template"
)

// Version selects which containerd a Daemon runs.
type Version int

const (
	// V1 is Debian's containerd 1.6 (testenv.Containerd1).
	V1 Version = 1
	// V2 is containerd 2.4.2 from the tool cache (testenv.Containerd2Dir).
	V2 Version = 2
)

// String returns "containerd1" or "containerd2" (used in subtest names).
func (v Version) String() string { return fmt.Sprintf("containerd%d", int(v)) }

// DefaultConfigVersion is the config file version DefaultConfig writes for v: 2 for containerd 1.6,
// 3 for 2.x (which also loads 2 and 4).
func (v Version) DefaultConfigVersion() int {
	if v == V1 {
		return 2
	}
	return 3
}

// PauseImage is the sandbox image every Daemon gets: a static binary that waits for SIGTERM, built and
// imported by the harness (no registry is involved).
const PauseImage = "wasmkube.test/pause:1"

// Paths are the private locations of one daemon. NewPaths allocates them.
type Paths struct {
	// Dir is the daemon's short private directory (/tmp/wk...): sockets, state, log, IPAM data.
	Dir string
	// HostRoot is the fake host root the layout mimics, or "".
	HostRoot string
	// Config is the config.toml the daemon loads: HostRoot/etc/containerd/config.toml, or Dir/config.toml.
	Config string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Socket and TTRPC are the gRPC (CRI) and ttrpc socket paths (short: < 108 bytes).
	Socket, TTRPC string
	// RuncRoot is runc's state directory (the runc runtime's options.Root).
	RuncRoot string
	// Runc is the runc binary (options.BinaryName).
	Runc string
	// CNIBinDir holds the CNI plugins; CNIConfDir the daemon's own conflist; CNIDataDir host-local's leases.
	CNIBinDir, CNIConfDir, CNIDataDir string
	// Bridge is the daemon's own Linux bridge (created by the CNI plugin on the first pod).
	Bridge string
	// Log is the file receiving the daemon's stdout and stderr (appended across restarts).
	Log string
}

// Config returns a minimal valid containerd config in file format configVersion (2, 3 or 4) that points
// containerd at p's private paths: root, state, gRPC and ttrpc addresses, no imports, runc with a private
// root and cgroupfs, CNI from p, restrict_oom_score_adj = true (root lacks CAP_SYS_RESOURCE here),
// netns mounts under the state dir, the pause image pinned, and NRI disabled. It panics on any other
// version: that is a bug in the test.
func Config(configVersion int, p Paths) []byte {
	var text string
	switch configVersion {
	case 2:
		text = configV2
	case 3:
		text = configV3
	case 4:
		text = configV4
	default:
		panic(fmt.Sprintf("containerdtest.Config: unsupported config version %d (want 2, 3 or 4)", configVersion))
	}
	var b bytes.Buffer
	data := struct {
		Paths
		PauseImage string
	}{p, PauseImage}
	if err := template.Must(template.Must(template.New("config").Parse(criPlugins)).Parse(text)).Execute(&b, data); err != nil {
		panic(fmt.Sprintf("containerdtest.Config: %v", err))
	}
	return b.Bytes()
}

// DefaultConfig returns Config(v.DefaultConfigVersion(), p).
func DefaultConfig(v Version, p Paths) []byte { return Config(v.DefaultConfigVersion(), p) }

// Strings in the templates go through printf %q: a Go-quoted path is a valid TOML basic string.
const configV2 = `# containerd test daemon (wasmkube containerdtest), config version 2
version = 2
root = {{printf "%q" .Root}}
state = {{printf "%q" .State}}
imports = []

[grpc]
  address = {{printf "%q" .Socket}}

[ttrpc]
  address = {{printf "%q" .TTRPC}}

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = {{printf "%q" .PauseImage}}
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = {{printf "%q" .CNIBinDir}}
      conf_dir = {{printf "%q" .CNIConfDir}}
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            BinaryName = {{printf "%q" .Runc}}
            Root = {{printf "%q" .RuncRoot}}
            SystemdCgroup = false
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
`

const configV3 = `# containerd test daemon (wasmkube containerdtest), config version 3
version = 3
root = {{printf "%q" .Root}}
state = {{printf "%q" .State}}
imports = []

[grpc]
  address = {{printf "%q" .Socket}}

[ttrpc]
  address = {{printf "%q" .TTRPC}}

[plugins]
{{template "cri" .}}`

const configV4 = `# containerd test daemon (wasmkube containerdtest), config version 4
version = 4
root = {{printf "%q" .Root}}
state = {{printf "%q" .State}}
imports = []

[plugins]
  [plugins."io.containerd.server.v1.grpc"]
    address = {{printf "%q" .Socket}}
  [plugins."io.containerd.server.v1.ttrpc"]
    address = {{printf "%q" .TTRPC}}
{{template "cri" .}}`

// criPlugins is the plugins section versions 3 and 4 share: the CRI plugin with its pause image, CNI and
// a runc runtime on private paths, and NRI off.
const criPlugins = `{{define "cri"}}  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {{printf "%q" .PauseImage}}
  [plugins."io.containerd.cri.v1.runtime"]
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [{{printf "%q" .CNIBinDir}}]
      conf_dir = {{printf "%q" .CNIConfDir}}
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes]
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
            BinaryName = {{printf "%q" .Runc}}
            Root = {{printf "%q" .RuncRoot}}
            SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
{{end}}`
