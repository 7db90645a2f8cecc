package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/internal/installer/result"
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
		nf      nodeFlags
		handler string
		absent  bool
	)
	fs := pflag.NewFlagSet("node-installer verify", pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	nf.bind(fs)
	fs.StringVar(&handler, "handler", "", "runtime handler to look for (required)")
	fs.BoolVar(&absent, "absent", false, "require the handler to be absent instead")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("verify: unexpected arguments %q", fs.Args())
	}
	r := result.Result{Operation: result.OpVerify, Handler: handler}
	if handler == "" {
		r.Fail(result.ReasonInvalidArguments, errors.New("verify: --handler is required"))
		return report(streams, nf.resultFile, r)
	}
	// The profile gives the state file, whose record of the handler's binary is probed. With an
	// explicit socket verify also works on a host it cannot detect: it asks only the CRI (and takes the
	// node lock only with --state-file).
	_, in, err := nf.node()
	if err != nil {
		if nf.overrides.CRISocket == "" || errors.Is(err, cli.ErrUsage) {
			detectFailure(&r, err)
			return report(streams, nf.resultFile, r)
		}
		in = installer.Installer{Target: installer.Target{StateFile: nf.stateFile},
			Host: installer.Host{CRI: criWaiter(filepath.Join(nf.hostRoot, nf.overrides.CRISocket)), Files: installer.DirFS{Root: nf.hostRoot}}}
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	in.VerifyTimeout = nf.timeout
	return report(streams, nf.resultFile, in.Verify(ctx, handler, !absent))
}
