package main

import (
	"context"
	"errors"
	"fmt"
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
		Short: "Check through the CRI that containerd is ready and a runtime handler is present (or --absent)",
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
		return fmt.Errorf("verify: unexpected arguments %q", fs.Args())
	}
	r := result.Result{Operation: result.OpVerify, Handler: handler}
	if handler == "" {
		r.Fail(result.ReasonInvalidArguments, errors.New("verify: --handler is required"))
		return report(streams, nf.resultFile, r)
	}
	// With an explicit socket, verify needs no distro profile (and takes the node lock only with --state-file).
	in := installer.Installer{Target: installer.Target{StateFile: nf.stateFile},
		Host: installer.Host{CRI: criWaiter(filepath.Join(nf.hostRoot, nf.overrides.CRISocket)), Files: installer.DirFS{Root: nf.hostRoot}}}
	if nf.overrides.CRISocket == "" {
		var err error
		if _, in, err = nf.node(); err != nil {
			detectFailure(&r, err)
			return report(streams, nf.resultFile, r)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	in.VerifyTimeout = nf.timeout
	return report(streams, nf.resultFile, in.Verify(ctx, handler, !absent))
}
