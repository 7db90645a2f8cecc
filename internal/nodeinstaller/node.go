package nodeinstaller

import (
	"context"
	"path/filepath"
	"time"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/distro"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// RestartAuto is the Node.Restart value that keeps the detected restart method.
const RestartAuto = "auto"

// Node is what every node operation shares: where the host is, how its containerd is configured and
// restarted, and where the result goes.
type Node struct {
	// HostRoot is where the node's root filesystem is mounted (/host in the installer's pod).
	HostRoot string
	// Hints and Overrides are handed to distro.DetectWithOverrides.
	Hints     distro.Hints
	Overrides distro.Overrides
	// Restart is a restart method (installerapi.RestartMethod) or RestartAuto; it overrides
	// Overrides.Restart unless it is RestartAuto or empty.
	Restart string
	// ProcRoot is the host's /proc, for the signal restart.
	ProcRoot string
	// Timeout bounds the whole operation; VerifyTimeout each wait for the CRI after a restart.
	Timeout       time.Duration
	VerifyTimeout time.Duration
	// ShimDir and StateFile replace the profile's when set (absolute host paths).
	ShimDir   string
	StateFile string
	// ExecRoot is containerd's / for probing the shim binary; empty means HostRoot.
	ExecRoot string
	// ResultFile receives the JSON result too ("" disables).
	ResultFile string
	// CrashAfter names a step after which the process kills itself (CrashAfterEnv; tests only).
	CrashAfter string
}

// Detect returns the node's distro profile with the overrides applied.
func (n Node) Detect() (distro.Profile, error) {
	o := n.Overrides
	if n.Restart != RestartAuto && n.Restart != "" {
		m, err := installerapi.ParseRestartMethod(n.Restart)
		if err != nil {
			return distro.Profile{}, cli.Usagef("--restart: %w (or auto)", err)
		}
		o.Restart = m
	}
	p, err := distro.DetectWithOverrides(n.HostRoot, n.Hints, o)
	if err != nil {
		return p, err
	}
	for _, f := range []struct {
		flag, value string
		field       *string
	}{{"--shim-dir", n.ShimDir, &p.ShimDir}, {"--state-file", n.StateFile, &p.StateFile}} {
		if f.value == "" {
			continue
		}
		if !filepath.IsAbs(f.value) {
			return p, cli.Usagef("%s %q is not an absolute host path", f.flag, f.value)
		}
		*f.field = filepath.Clean(f.value)
	}
	return p, nil
}

// Installer detects the profile and wires the real host: files under the host root, the restart
// strategy, the CRI socket and the shim probe.
func (n Node) Installer() (distro.Profile, installer.Installer, error) {
	p, err := n.Detect()
	if err != nil {
		return p, installer.Installer{}, err
	}
	socket := filepath.Join(n.HostRoot, p.CRISocket)
	r, err := restart.New(p.Restart.Method, restart.Config{HostRoot: n.HostRoot, Units: p.Restart.Units,
		ProcRoot: n.ProcRoot, Process: p.Restart.Process, Match: n.restartMatch(p), Socket: socket})
	if err != nil {
		return p, installer.Installer{}, err
	}
	in := installer.Installer{
		Profile: p,
		Host: installer.Host{Files: installer.DirFS{Root: n.HostRoot}, Restarter: r, CRI: criWaiter(socket),
			Prober: installer.ExecProber{Root: n.execRoot()}},
		VerifyTimeout: n.VerifyTimeout,
	}
	return p, in, nil
}

// restartMatch are the strings by which the signal strategy tells the node's containerd from others:
// its command line names host paths, and a host root other than / may be visible to the host as such
// (tests, nested roots).
func (n Node) restartMatch(p distro.Profile) []string {
	var match []string
	for _, hp := range []string{p.Config.Path, p.Config.Imports, p.CRISocket} {
		if hp != "" {
			match = append(match, hp, filepath.Join(n.HostRoot, hp))
		}
	}
	return match
}

// execRoot is where shim binaries are probed: ExecRoot, else the host root.
func (n Node) execRoot() string {
	if n.ExecRoot == "" {
		return n.HostRoot
	}
	return n.ExecRoot
}

// criWaiter waits on a CRI socket (pkg/cri).
type criWaiter string

func (socket criWaiter) WaitReady(ctx context.Context, handler string, present bool) error {
	_, err := cri.WaitReady(ctx, string(socket), handler, present)
	return err
}

// withTimeout bounds ctx by the operation's timeout.
func (n Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.Timeout)
}
