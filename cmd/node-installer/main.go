// Command node-installer runs on a node (normally as a privileged Job pod with the host's root at /host)
// and installs, verifies or removes a containerd shim. Run it without arguments for the list of commands,
// with --version for its build. It exits 0 on success, 1 when a retry may help, 2 for a command-line
// mistake and 3 when retrying on this node cannot help (see nodeinstaller.ExitCode).
//
// Each command's file binds its flags to a typed configuration and runs internal/nodeinstaller.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Dispatch(ctx, "node-installer", commands(), os.Args[1:], os.LookupEnv,
		cli.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	if code := nodeinstaller.ExitCode(err); code != installerapi.ExitOK {
		fmt.Fprintf(os.Stderr, "node-installer: %v\n", err)
		os.Exit(code)
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
