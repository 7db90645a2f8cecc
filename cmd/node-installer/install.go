package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/internal/installer/result"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/distro"
	"github.com/wasmkube/wasmkube/pkg/restart"
	"github.com/wasmkube/wasmkube/pkg/shimsource"
)

// CrashAfterEnv names a step after which the node-installer kills itself with SIGKILL. It is a test
// hook for the crash-convergence tests (a killed run followed by a normal run must converge); never
// set it in production.
const CrashAfterEnv = "WASMKUBE_TEST_CRASH_AFTER"

// installCommand is `node-installer install`.
func installCommand() cli.Command {
	return cli.Command{
		Name:  "install",
		Short: "Install a containerd shim on this node: fetch, place, patch config, restart, verify (rolls back on failure)",
		Run:   runInstall,
	}
}

// nodeFlags are the flags every node operation shares: where the host is, how it is configured,
// and where the result goes.
type nodeFlags struct {
	hostRoot   string
	hints      distro.Hints
	overrides  distro.Overrides
	restart    string
	procRoot   string
	timeout    time.Duration
	verifyWait time.Duration
	resultFile string
	shimDir    string
	stateFile  string
	execRoot   string
}

func (f *nodeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.hostRoot, "host-root", "/host", "directory where the node's root filesystem is mounted")
	fs.StringVar(&f.hints.Distro, "distro", "", "skip detection and use this distro's profile: "+strings.Join(distro.Distros(), ", "))
	fs.StringVar(&f.hints.ContainerRuntimeVersion, "container-runtime-version", "", "the node's status.nodeInfo.containerRuntimeVersion, e.g. containerd://2.1.5")
	fs.StringVar(&f.overrides.ConfigPath, "containerd-config", "", "host path of the containerd config (or template, or drop-in directory) to use instead of the detected one")
	fs.StringVar(&f.overrides.CRISocket, "cri-socket", "", "host path of containerd's CRI socket to use instead of the detected one")
	fs.StringVar(&f.restart, "restart", "auto", "how to restart containerd: auto (the detected method), systemd, signal or none")
	fs.StringSliceVar(&f.overrides.Units, "restart-unit", nil, "systemd unit(s) to restart instead of the detected ones")
	fs.StringVar(&f.procRoot, "proc-root", "/proc", "the host's /proc (the installer runs with hostPID), for the signal restart")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "deadline of the whole operation (a rollback gets its own 2 minutes)")
	fs.DurationVar(&f.verifyWait, "verify-timeout", time.Minute, "how long to wait for the CRI to report the handler after a restart")
	fs.StringVar(&f.shimDir, "shim-dir", "", "host directory for shim binaries instead of the profile's (a host whose /opt is read-only)")
	fs.StringVar(&f.stateFile, "state-file", "", "host path of the installer's state file instead of the profile's (backups go beside it)")
	fs.StringVar(&f.execRoot, "exec-root", "", "directory that is containerd's / (default: --host-root); the shim binary is probed chrooted there, as containerd would run it")
	fs.StringVar(&f.resultFile, "result-file", "/dev/termination-log", `file that receives the JSON result too ("" disables)`)
}

// node detects the profile and wires the real host: files under the host root, the restart
// strategy, the CRI socket.
func (f *nodeFlags) node() (distro.Profile, installer.Installer, error) {
	if f.restart != "auto" {
		m, err := distro.ParseRestartMethod(f.restart)
		if err != nil {
			return distro.Profile{}, installer.Installer{}, cli.Usagef("--restart: %w (or auto)", err)
		}
		f.overrides.Restart = m
	}
	p, err := distro.DetectWithOverrides(f.hostRoot, f.hints, f.overrides)
	if err != nil {
		return p, installer.Installer{}, err
	}
	if f.shimDir != "" {
		if !filepath.IsAbs(f.shimDir) {
			return p, installer.Installer{}, cli.Usagef("--shim-dir %q is not an absolute host path", f.shimDir)
		}
		p.ShimDir = filepath.Clean(f.shimDir)
	}
	if f.stateFile != "" {
		if !filepath.IsAbs(f.stateFile) {
			return p, installer.Installer{}, cli.Usagef("--state-file %q is not an absolute host path", f.stateFile)
		}
		p.StateFile = filepath.Clean(f.stateFile)
	}
	socket := filepath.Join(f.hostRoot, p.CRISocket)
	// The signal strategy tells the node's containerd from others by its command line, which names
	// host paths; a host root other than / may be visible to the host as such (tests, nested roots).
	var match []string
	for _, hp := range []string{p.Config.Path, p.Config.Imports, p.CRISocket} {
		if hp != "" {
			match = append(match, hp, filepath.Join(f.hostRoot, hp))
		}
	}
	r, err := restart.New(string(p.Restart.Method), restart.Config{HostRoot: f.hostRoot, Units: p.Restart.Units,
		ProcRoot: f.procRoot, Process: p.Restart.Process, Match: match, Socket: socket})
	if err != nil {
		return p, installer.Installer{}, err
	}
	in := installer.Installer{
		Target: installer.Target{Distro: p.Distro, ConfigPath: p.Config.Path, ConfigMode: string(p.Config.Mode),
			ConfigVersion: p.Config.Version, Seed: p.Config.Seed, ShimDir: p.ShimDir, StateFile: p.StateFile,
			ContainerdMajor: p.ContainerdMajor},
		Host: installer.Host{Files: installer.DirFS{Root: f.hostRoot}, Restarter: r, CRI: criWaiter(socket),
			Prober: f.prober()},
		VerifyTimeout: f.verifyWait,
	}
	return p, in, nil
}

// prober runs shim binaries chrooted into --exec-root, else the host root.
func (f *nodeFlags) prober() installer.Prober {
	root := f.execRoot
	if root == "" {
		root = f.hostRoot
	}
	return installer.ExecProber{Root: root}
}

// detectFailure gives the reason for a failed detection: a config detection could not read is
// reported as such (detection only reads it, so it is untouched), a bad host flag as invalid arguments.
func detectFailure(r *result.Result, err error) {
	switch {
	case errors.Is(err, cli.ErrUsage):
		r.Fail(result.ReasonInvalidArguments, err)
	case errors.Is(err, containerdcfg.ErrParse):
		r.Fail(result.ReasonConfigUnparseable, fmt.Errorf("containerd config left untouched: %w", err))
	case errors.Is(err, containerdcfg.ErrUnknownVersion):
		r.Fail(result.ReasonConfigUnknownVersion, fmt.Errorf("containerd config left untouched: %w", err))
	default:
		r.Fail(result.ReasonDetectFailed, err)
	}
}

// crashHook returns the AfterStep hook for CrashAfterEnv, or nil.
func crashHook(env cli.LookupEnv) func(string) {
	step, ok := env(CrashAfterEnv)
	if !ok || step == "" {
		return nil
	}
	return func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns
		}
	}
}

// criWaiter waits on a CRI socket (pkg/cri).
type criWaiter string

func (socket criWaiter) WaitReady(ctx context.Context, handler string, present bool) error {
	_, err := cri.WaitReady(ctx, string(socket), handler, present)
	return err
}

// fetcher adapts a shimsource.Source to the installer for one platform.
type fetcher struct {
	src      shimsource.Source
	platform shimsource.Platform
}

func (f fetcher) Fetch(ctx context.Context, dest string) (installer.Fetched, error) {
	st, err := f.src.Stage(ctx, f.platform, dest)
	if errors.Is(err, shimsource.ErrNoPlatform) {
		return nil, fmt.Errorf("%w: %w", installer.ErrUnsupportedPlatform, err)
	}
	if err != nil {
		return nil, err
	}
	return staged{st}, nil
}

// staged adapts a shimsource.Staged to the installer.
type staged struct{ st *shimsource.Staged }

func (s staged) Finish() (installer.Artifact, error) {
	a, err := s.st.Finish()
	if err != nil {
		return installer.Artifact{}, err
	}
	return installer.Artifact{File: a.File, SHA256: a.SHA256, Digest: a.Digest, Platform: a.Platform.String()}, nil
}

func (s staged) Discard() { s.st.Discard() }

// sourceFlags select where the shim binary comes from: exactly one of OCI, HTTP or builtin.
type sourceFlags struct {
	ociImage, ociPath, registryConfig string
	httpURL, httpSHA256               string
	httpInsecure                      bool
	builtin, builtinDir               string
	platform                          string
}

func (f *sourceFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.ociImage, "source-oci", "", "OCI image holding the shim (REGISTRY/REPO:TAG or @sha256:...)")
	fs.StringVar(&f.ociPath, "source-path", "", "path of the shim binary inside the --source-oci image")
	fs.StringVar(&f.registryConfig, "registry-config", "", "docker config.json with registry credentials (a mounted pull secret)")
	fs.StringVar(&f.httpURL, "source-http-url", "", "https URL of the shim binary (or a .tar.gz holding it)")
	fs.StringVar(&f.httpSHA256, "source-sha256", "", "sha256 of the --source-http-url download (required with it)")
	fs.BoolVar(&f.httpInsecure, "source-insecure-http", false, "allow a plain http:// --source-http-url")
	fs.StringVar(&f.builtin, "source-builtin", "", "builtin shim shipped in the installer image: "+strings.Join(shimsource.BuiltinNames(), ", "))
	fs.StringVar(&f.builtinDir, "builtin-dir", "/shims", "directory holding the builtin shims")
	fs.StringVar(&f.platform, "platform", "", "platform to fetch for, e.g. linux/arm64 (default: this machine's)")
}

func (f *sourceFlags) source() (installer.Fetcher, error) {
	p := shimsource.HostPlatform()
	if f.platform != "" {
		var err error
		if p, err = shimsource.ParsePlatform(f.platform); err != nil {
			return nil, fmt.Errorf("--platform: %w", err)
		}
	}
	var sources []shimsource.Source
	if f.ociImage != "" {
		if f.ociPath == "" {
			return nil, errors.New("--source-oci needs --source-path (the binary's path inside the image)")
		}
		sources = append(sources, shimsource.OCI{Image: f.ociImage, Path: f.ociPath, DockerConfig: f.registryConfig})
	}
	if f.httpURL != "" {
		if f.httpSHA256 == "" {
			return nil, errors.New("--source-http-url needs --source-sha256")
		}
		sources = append(sources, shimsource.HTTP{URL: f.httpURL, SHA256: f.httpSHA256, AllowInsecureHTTP: f.httpInsecure})
	}
	if f.builtin != "" {
		sources = append(sources, shimsource.Builtin{Dir: f.builtinDir, Name: f.builtin})
	}
	if len(sources) != 1 {
		return nil, errors.New("give exactly one shim source: --source-oci, --source-http-url or --source-builtin")
	}
	return fetcher{src: sources[0], platform: p}, nil
}

func runInstall(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		nf      nodeFlags
		sf      sourceFlags
		spec    installer.Spec
		options []string
		dryRun  bool
	)
	fs := pflag.NewFlagSet("node-installer install", pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	nf.bind(fs)
	sf.bind(fs)
	fs.StringVar(&spec.Shim, "shim-name", "", "name of the Shim (required)")
	fs.StringVar(&spec.Handler, "handler", "", "containerd runtime name = RuntimeClass handler (default: the shim name)")
	fs.StringVar(&spec.RuntimeType, "runtime-type", "", "containerd runtime_type, e.g. io.containerd.spin.v2; names the binary containerd-shim-spin-v2 (required)")
	fs.StringArrayVar(&options, "option", nil, `runtime option key=value, repeatable; the value is a TOML value (true/false, integers, floats, "strings" with TOML escapes, ["arrays", "of strings"]) or else a plain string; from the environment one per line`)
	fs.StringVar(&spec.SpecHash, "spec-hash", "", "hash of the Shim spec, recorded in the state file and the result")
	fs.BoolVar(&dryRun, "dry-run", false, "print the plan and the config diff; change nothing")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("install: unexpected arguments %q", fs.Args())
	}
	r := result.Result{Operation: result.OpInstall, Shim: spec.Shim, Handler: spec.Handler, SpecHash: spec.SpecHash}
	if spec.Handler == "" {
		spec.Handler = spec.Shim
		r.Handler = spec.Handler
	}
	var err error
	if spec.Shim == "" || spec.RuntimeType == "" {
		err = errors.New("--shim-name and --runtime-type are required")
	}
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
	var src installer.Fetcher
	if err == nil && !dryRun {
		src, err = sf.source()
	}
	if err != nil {
		r.Fail(result.ReasonInvalidArguments, fmt.Errorf("install: %w", err))
		return report(streams, nf.resultFile, r)
	}
	p, in, err := nf.node()
	if err != nil {
		detectFailure(&r, err)
		return report(streams, nf.resultFile, r)
	}
	if u := p.Unsupported; u != nil {
		r.Distro = p.Distro
		r.Fail(result.ReasonUnsupportedHost, fmt.Errorf("%s node: nothing changed: %s", p.Distro, u))
		return report(streams, nf.resultFile, r)
	}
	if dryRun {
		plan, err := in.DryRun(spec)
		if err != nil {
			return fmt.Errorf("install --dry-run: %w", err)
		}
		_, err = io.WriteString(streams.Out, plan)
		return err
	}
	in.Host.Fetcher = src
	in.Host.AfterStep = crashHook(env)
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	return report(streams, nf.resultFile, in.Install(ctx, spec))
}

// report prints the result on stdout, writes it to the result file, and turns a failure into the
// command's error (a failedResult, whose reason decides the exit code: an unsupported node
// (result.IsUnsupported) exits 3 like every failure a retry cannot fix, so its Job is not retried). A
// result file that cannot be written is a warning on stderr.
func report(streams cli.Streams, resultFile string, r result.Result) error {
	doc, err := r.Encode()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(streams.Out, "%s\n", doc); err != nil {
		return err
	}
	if err := result.WriteFile(resultFile, doc); err != nil {
		fmt.Fprintf(streams.ErrOut, "node-installer: warning: %v\n", err)
	}
	if !r.Success {
		return failedResult{r}
	}
	return nil
}

// failedResult is the error of a run whose result reports a failure.
type failedResult struct{ r result.Result }

func (e failedResult) Error() string {
	return fmt.Sprintf("%s failed (%s): %s", e.r.Operation, e.r.Reason, e.r.Error)
}
