package main

import (
	"context"
	"errors"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer/result"
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
		nf                         nodeFlags
		shim, handler, runtimeType string
	)
	fs := pflag.NewFlagSet("node-installer uninstall", pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	nf.bind(fs)
	fs.StringVar(&shim, "shim-name", "", "name of the Shim (required)")
	fs.StringVar(&handler, "handler", "", "containerd runtime name = RuntimeClass handler (default: the shim name)")
	fs.StringVar(&runtimeType, "runtime-type", "", "runtime_type, only needed to find the binary when the state file does not record it")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("uninstall: unexpected arguments %q", fs.Args())
	}
	if handler == "" {
		handler = shim
	}
	r := result.Result{Operation: result.OpUninstall, Shim: shim, Handler: handler}
	if shim == "" {
		r.Fail(result.ReasonInvalidArguments, errors.New("uninstall: --shim-name is required"))
		return report(streams, nf.resultFile, r)
	}
	_, in, err := nf.node()
	if err != nil {
		detectFailure(&r, err)
		return report(streams, nf.resultFile, r)
	}
	in.Host.AfterStep = crashHook(env)
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	return report(streams, nf.resultFile, in.Uninstall(ctx, shim, handler, runtimeType))
}
