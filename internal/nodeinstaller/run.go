package nodeinstaller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// CrashAfterEnv names a step after which the node-installer kills itself with SIGKILL. It is a test
// hook for the crash-convergence tests (a killed run followed by a normal run must converge); never
// set it in production. cmd/node-installer reads it into Node.CrashAfter.
const CrashAfterEnv = "WASMKUBE_TEST_CRASH_AFTER"

// InstallRequest is what to install.
type InstallRequest struct {
	// Spec is the Shim; its Options are filled from Options.
	Spec installer.Spec
	// Options are runtime options, key=value with a TOML value (containerdcfg.ParseOption); a single
	// entry holding newlines (from the environment) is one option per line.
	Options []string
	// DryRun prints the plan and the config diff instead of installing.
	DryRun bool
}

// Install runs an install on the node and reports its result on out (or, for a dry run, prints the
// plan).
func Install(ctx context.Context, n Node, src Source, req InstallRequest, streams cli.Streams) error {
	spec := req.Spec
	r := installerapi.Result{Operation: installerapi.OpInstall, Shim: spec.Shim, Handler: spec.Handler, SpecHash: spec.SpecHash}
	if spec.Handler == "" {
		spec.Handler = spec.Shim
		r.Handler = spec.Handler
	}
	var err error
	if spec.Shim == "" || spec.RuntimeType == "" {
		err = errors.New("--shim-name and --runtime-type are required")
	}
	options := req.Options
	if len(options) == 1 && strings.Contains(options[0], "\n") {
		options = strings.Split(strings.TrimSpace(options[0]), "\n")
	}
	for _, o := range options {
		if err != nil {
			break
		}
		var opt containerdcfg.Option
		if opt, err = containerdcfg.ParseOption(strings.TrimSpace(o)); err == nil {
			spec.Options = append(spec.Options, opt)
		}
	}
	var fetch installer.Fetcher
	if err == nil && !req.DryRun {
		fetch, err = src.Fetcher()
	}
	if err != nil {
		r.Fail(installerapi.ReasonInvalidArguments, fmt.Errorf("install: %w", err))
		return n.report(streams, r)
	}
	p, in, err := n.Installer()
	if err != nil {
		detectFailure(&r, err)
		return n.report(streams, r)
	}
	if u := p.Unsupported; u != nil {
		r.Distro = p.Distro
		r.Fail(installerapi.ReasonUnsupportedHost, fmt.Errorf("%s node: nothing changed: %s", p.Distro, u))
		return n.report(streams, r)
	}
	if req.DryRun {
		plan, err := in.DryRun(spec)
		if err != nil {
			return fmt.Errorf("install --dry-run: %w", err)
		}
		_, err = io.WriteString(streams.Out, plan)
		return err
	}
	in.Host.Fetcher = fetch
	in.Host.AfterStep = n.crashHook()
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	return n.report(streams, in.Install(ctx, spec))
}

// Uninstall removes a Shim from the node and reports the result on stdout. runtimeType is only needed to
// find the binary when the state file does not record it.
func Uninstall(ctx context.Context, n Node, shim, handler, runtimeType string, streams cli.Streams) error {
	if handler == "" {
		handler = shim
	}
	r := installerapi.Result{Operation: installerapi.OpUninstall, Shim: shim, Handler: handler}
	if shim == "" {
		r.Fail(installerapi.ReasonInvalidArguments, errors.New("uninstall: --shim-name is required"))
		return n.report(streams, r)
	}
	_, in, err := n.Installer()
	if err != nil {
		detectFailure(&r, err)
		return n.report(streams, r)
	}
	in.Host.AfterStep = n.crashHook()
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	return n.report(streams, in.Uninstall(ctx, shim, handler, runtimeType))
}

// Verify checks that the CRI reports handler (present, else absent) and that its recorded shim binary
// runs, and reports the result on stdout. With an explicit CRI socket it also works on a host it cannot
// detect: it asks only the CRI then (and takes the node lock only with a state file).
func Verify(ctx context.Context, n Node, shim, handler string, present bool, streams cli.Streams) error {
	r := installerapi.Result{Operation: installerapi.OpVerify, Shim: shim, Handler: handler}
	if handler == "" {
		r.Fail(installerapi.ReasonInvalidArguments, errors.New("verify: --handler is required"))
		return n.report(streams, r)
	}
	_, in, err := n.Installer()
	if err != nil {
		if n.Overrides.CRISocket == "" || errors.Is(err, cli.ErrUsage) {
			detectFailure(&r, err)
			return n.report(streams, r)
		}
		in = installer.Installer{Profile: distro.Profile{StateFile: n.StateFile},
			Host: installer.Host{CRI: criWaiter(filepath.Join(n.HostRoot, n.Overrides.CRISocket)), Files: installer.DirFS{Root: n.HostRoot}}}
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	in.VerifyTimeout = n.Timeout
	r = in.Verify(ctx, handler, present)
	r.Shim = shim
	return n.report(streams, r)
}

// detectFailure gives the reason for a failed detection: a config detection could not read is
// reported as such (detection only reads it, so it is untouched), a bad host flag as invalid arguments.
func detectFailure(r *installerapi.Result, err error) {
	if errors.Is(err, cli.ErrUsage) {
		r.Fail(installerapi.ReasonInvalidArguments, err)
		return
	}
	if reason, ok := installer.ConfigReason(err); ok {
		r.Fail(reason, fmt.Errorf("containerd config left untouched: %w", err))
		return
	}
	r.Fail(installerapi.ReasonDetectFailed, err)
}

// crashHook returns the AfterStep hook for CrashAfter, or nil.
func (n Node) crashHook() func(string) {
	if n.CrashAfter == "" {
		return nil
	}
	return func(s string) {
		if s == n.CrashAfter {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns
		}
	}
}

// report prints the result on stdout, writes it to the result file, and turns a failure into the
// command's error (a FailedResult, whose reason decides the exit code). A result file that cannot be
// written is a warning on stderr.
func (n Node) report(streams cli.Streams, r installerapi.Result) error {
	doc, err := r.Encode()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(streams.Out, "%s\n", doc); err != nil {
		return err
	}
	if err := writeResultFile(n.ResultFile, doc); err != nil {
		fmt.Fprintf(streams.ErrOut, "node-installer: warning: %v\n", err)
	}
	if !r.Success {
		return FailedResult{r}
	}
	return nil
}

// PrintProfile prints the node's distro profile with the overrides applied, as indented JSON.
func PrintProfile(n Node, out io.Writer) error {
	if n.Restart != "" {
		if _, err := installerapi.ParseRestartMethod(n.Restart); err != nil {
			return cli.Usagef("detect: --restart: %w", err)
		}
	}
	p, err := n.Detect()
	if err != nil {
		return err
	}
	doc, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("detect: encode profile: %w", err)
	}
	_, err = fmt.Fprintf(out, "%s\n", doc)
	return err
}
