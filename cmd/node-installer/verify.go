package main

import (
	"context"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
)

// verifyCommand is `node-installer verify`.
func verifyCommand() cli.Command {
	return cli.Command{
		Name:  "verify",
		Short: "Check that the handler's shim binary runs and the CRI reports the handler (or, with --absent, no longer does)",
		Run:   runVerify,
	}
}

func runVerify(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		node          nodeinstaller.Node
		shim, handler string
		absent        bool
	)
	fs := newFlagSet("verify", streams)
	bindNode(fs, &node, env)
	fs.StringVar(&shim, "shim-name", "", "name of the Shim, recorded in the result")
	fs.StringVar(&handler, "handler", "", "runtime handler to look for (required)")
	fs.BoolVar(&absent, "absent", false, "require the handler to be absent instead")
	if err := parse(fs, "verify: ", args, env); err != nil {
		return err
	}
	return nodeinstaller.Verify(ctx, node, shim, handler, !absent, streams)
}
