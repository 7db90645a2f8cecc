package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// newFlagSet returns the flag set of a command, printing its errors and help on stderr.
func newFlagSet(name string, streams cli.Streams) *pflag.FlagSet {
	fs := pflag.NewFlagSet("node-installer "+name, pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	return fs
}

// bindHost binds the flags that say where the host is and how its containerd is set up, shared by
// detect and the node operations.
func bindHost(fs *pflag.FlagSet, n *nodeinstaller.Node, restartDefault, restartUsage string) {
	fs.StringVar(&n.HostRoot, "host-root", "/host", "directory where the node's root filesystem is mounted")
	fs.StringVar(&n.Hints.Distro, "distro", "", "skip detection and use this distro's profile: "+strings.Join(distro.Distros(), ", "))
	fs.StringVar(&n.Hints.ContainerRuntimeVersion, "container-runtime-version", "", "the node's status.nodeInfo.containerRuntimeVersion, e.g. containerd://2.1.5")
	fs.StringVar(&n.Overrides.ConfigPath, "containerd-config", "", "host path of the containerd config (or template, or drop-in directory) to use instead of the detected one")
	fs.StringVar(&n.Overrides.CRISocket, "cri-socket", "", "host path of containerd's CRI socket to use instead of the detected one")
	fs.StringVar(&n.Restart, "restart", restartDefault, restartUsage)
	fs.StringSliceVar(&n.Overrides.Units, "restart-unit", nil, "systemd unit(s) to restart instead of the detected ones")
}

// bindNode binds the flags every node operation (install, uninstall, verify) shares, and reads the
// crash test hook from the environment.
func bindNode(fs *pflag.FlagSet, n *nodeinstaller.Node, env cli.LookupEnv) {
	bindHost(fs, n, nodeinstaller.RestartAuto, "how to restart containerd: auto (the detected method), systemd, signal or none")
	fs.StringVar(&n.ProcRoot, "proc-root", "/proc", "the host's /proc (the installer runs with hostPID), for the signal restart")
	fs.DurationVar(&n.Timeout, "timeout", 5*time.Minute, "deadline of the whole operation (a rollback gets its own 2 minutes)")
	fs.DurationVar(&n.VerifyTimeout, "verify-timeout", time.Minute, "how long to wait for the CRI to report the handler after a restart")
	fs.StringVar(&n.ShimDir, "shim-dir", "", "host directory for shim binaries instead of the profile's (a host whose /opt is read-only)")
	fs.StringVar(&n.StateFile, "state-file", "", "host path of the installer's state file instead of the profile's (backups go beside it)")
	fs.StringVar(&n.ExecRoot, "exec-root", "", "directory that is containerd's / (default: --host-root); the shim binary is probed chrooted there, as containerd would run it")
	fs.StringVar(&n.ResultFile, "result-file", "/dev/termination-log", `file that receives the JSON result too ("" disables)`)
	if env != nil {
		n.CrashAfter, _ = env(nodeinstaller.CrashAfterEnv)
	}
}

// parse parses a command's flags (and their environment variables) and refuses positional arguments.
func parse(fs *pflag.FlagSet, command string, args []string, env cli.LookupEnv) error {
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("%sunexpected arguments %q", command, fs.Args())
	}
	return nil
}
