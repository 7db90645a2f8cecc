// Command node-installer runs on a node (normally as a privileged Job pod with the host's root at /host)
// and installs, verifies or removes a containerd shim. Run it without arguments for the list of commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmkube/wasmkube/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Dispatch(ctx, "node-installer", commands(), os.Args[1:], os.LookupEnv,
		cli.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "node-installer: %v\n", err)
		os.Exit(1)
	}
}

// commands lists the subcommands; each lives in its own file of this package.
func commands() []cli.Command {
	return []cli.Command{
		containerdConfigCommand(),
		detectCommand(),
		installCommand(),
		uninstallCommand(),
		verifyCommand(),
	}
}
