package main

import (
	"context"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
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
	var node nodeinstaller.Node
	fs := newFlagSet("detect", streams)
	bindHost(fs, &node, "", "restart method to use instead of the detected one: systemd, signal or none")
	if err := parse(fs, "detect: ", args, env); err != nil {
		return err
	}
	return nodeinstaller.PrintProfile(node, streams.Out)
}
