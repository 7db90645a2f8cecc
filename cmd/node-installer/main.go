// Command node-installer runs on a node (normally as a privileged Job pod with the host's root at /host)
// and installs, verifies or removes a containerd shim. Run it without arguments for the list of commands,
// with --version for its build. It exits 0 on success, 1 when a retry may help, 2 for a command-line
// mistake and 3 when retrying on this node cannot help (see result.ExitCode).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer/result"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Dispatch(ctx, "node-installer", commands(), os.Args[1:], os.LookupEnv,
		cli.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	if code := exitCode(err); code != result.ExitOK {
		fmt.Fprintf(os.Stderr, "node-installer: %v\n", err)
		os.Exit(code)
	}
}

// exitCode is the exit code for a command's error: result.ExitUsage for a command-line mistake, the
// result's code for a failed run (see result.Result.ExitCode), result.ExitPermanent for a containerd
// config or host that cannot be handled, else result.ExitTransient.
func exitCode(err error) int {
	var failed failedResult
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
		return result.ExitOK
	case errors.Is(err, cli.ErrUsage), errors.Is(err, containerdcfg.ErrInvalidRuntime), errors.Is(err, containerdcfg.ErrContainerdVersion):
		return result.ExitUsage
	case errors.As(err, &failed):
		return failed.r.ExitCode()
	case errors.Is(err, containerdcfg.ErrParse), errors.Is(err, containerdcfg.ErrUnknownVersion),
		errors.Is(err, containerdcfg.ErrConflict), errors.Is(err, containerdcfg.ErrUnsafeEdit),
		errors.Is(err, distro.ErrUnknown), errors.Is(err, distro.ErrNotContainerd), errors.Is(err, distro.ErrAmbiguous):
		return result.ExitPermanent
	}
	return result.ExitTransient
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
