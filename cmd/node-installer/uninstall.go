package main

import (
	"context"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
)

// uninstallCommand is `node-installer uninstall`.
func uninstallCommand() cli.Command {
	return cli.Command{
		Name:  "uninstall",
		Short: "Remove a shim from this node: restore the config, restart, verify the handler is gone, remove the binary",
		Run:   runUninstall,
	}
}

func runUninstall(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		node                       nodeinstaller.Node
		shim, handler, runtimeType string
	)
	fs := newFlagSet("uninstall", streams)
	bindNode(fs, &node, env)
	fs.StringVar(&shim, "shim-name", "", "name of the Shim (required)")
	fs.StringVar(&handler, "handler", "", "containerd runtime name = RuntimeClass handler (default: the shim name)")
	fs.StringVar(&runtimeType, "runtime-type", "", "runtime_type, only needed to find the binary when the state file does not record it")
	if err := parse(fs, "uninstall: ", args, env); err != nil {
		return err
	}
	return nodeinstaller.Uninstall(ctx, node, shim, handler, runtimeType, streams)
}
