package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// detectCommand is `node-installer detect`: it prints the node's distro profile (pkg/distro) as JSON.
func detectCommand() cli.Command {
	return cli.Command{
		Name:  "detect",
		Short: "Print how containerd is configured on this node (distro, config target, restart, CRI socket) as JSON",
		Run:   runDetect,
	}
}

func runDetect(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		hostRoot string
		hints    distro.Hints
		o        distro.Overrides
		restart  string
	)
	fs := pflag.NewFlagSet("node-installer detect", pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	fs.StringVar(&hostRoot, "host-root", "/host", "directory where the node's root filesystem is mounted")
	fs.StringVar(&hints.ContainerRuntimeVersion, "container-runtime-version", "", "the node's status.nodeInfo.containerRuntimeVersion, e.g. containerd://2.1.5-k3s1")
	fs.StringVar(&hints.Distro, "distro", "", "skip detection and use this distro's profile: "+strings.Join(distro.Distros(), ", "))
	fs.StringVar(&o.ConfigPath, "containerd-config", "", "host path of the containerd config (or template, or drop-in directory) to use instead of the detected one")
	fs.StringVar(&o.CRISocket, "cri-socket", "", "host path of containerd's CRI socket to use instead of the detected one")
	fs.StringVar(&restart, "restart", "", "restart method to use instead of the detected one: systemd, signal or none")
	fs.StringSliceVar(&o.Units, "restart-unit", nil, "systemd unit(s) to restart instead of the detected ones")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("detect: unexpected arguments %q", fs.Args())
	}
	if restart != "" {
		m, err := distro.ParseRestartMethod(restart)
		if err != nil {
			return cli.Usagef("detect: --restart: %w", err)
		}
		o.Restart = m
	}
	p, err := distro.DetectWithOverrides(hostRoot, hints, o)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("detect: encode profile: %w", err)
	}
	_, err = fmt.Fprintf(streams.Out, "%s\n", out)
	return err
}
