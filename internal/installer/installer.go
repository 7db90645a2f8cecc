package installer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// Steps, as named in Result.Steps and in Host.AfterStep.
const (
	StepLock    = "lock"
	StepPlan    = "plan"
	StepIntent  = "intent"
	StepFetch   = "fetch"
	StepBinary  = "binary"
	StepConfig  = "config"
	StepRestart = "restart"
	StepVerify  = "verify"
	StepCommit  = "commit"
)

// Spec is what to install.
type Spec struct {
	Shim    string
	Handler string
	// RuntimeType is the shim's runtime type, e.g. io.containerd.spin.v2; its version names the binary
	// with the handler (BinaryName). containerd's runtime_type is the binary's absolute path.
	RuntimeType string
	Options     []containerdcfg.Option
	// SpecHash identifies the Shim spec. An installed entry with the same non-empty hash, an unchanged
	// binary and configuration is not fetched again.
	SpecHash string
}

// Artifact is a fetched shim binary.
type Artifact struct {
	// File is the binary's path in this process's filesystem, directly inside the fetch directory.
	File     string
	SHA256   string
	Digest   string
	Platform string
}

// Fetcher fetches the shim binary for this node into destDir (a path in this process's filesystem on
// the same filesystem as the shim directory).
type Fetcher interface {
	// Fetch writes the binary completely and verifies everything the source offers (digests,
	// checksums), so that a bad source fails here; making it durable is left to Fetched.Finish.
	Fetch(ctx context.Context, destDir string) (Fetched, error)
}

// Fetched is a binary a Fetcher wrote and verified but did not yet make durable.
type Fetched interface {
	// Finish makes the binary durable directly inside the fetch directory and describes it. The
	// installer runs it while containerd restarts.
	Finish() (Artifact, error)
	// Discard drops the binary unless Finish made it durable (then it does nothing).
	Discard()
}

// Restarter restarts containerd and returns once it runs again (pkg/restart).
type Restarter interface {
	Restart(ctx context.Context) error
}

// Preparer is implemented by a Restarter that can do part of a restart ahead of it (pkg/restart's
// signal strategy finds containerd's process). The installer runs Prepare beside the fetch when it
// expects to restart; an error there is left for Restart to report.
type Preparer interface {
	Prepare() error
}

// Waiter waits until the CRI reports RuntimeReady and the handler present (or absent) (pkg/cri).
type Waiter interface {
	WaitReady(ctx context.Context, handler string, present bool) error
}

// Host is everything the transaction does to the node.
type Host struct {
	Files     Files
	Fetcher   Fetcher // install only
	Restarter Restarter
	CRI       Waiter
	// Prober runs the shim binary once it is in place (install) or recorded (verify); nil skips it.
	Prober Prober
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterStep, if set, runs after each step that finished without error (a test hook: the
	// node-installer kills itself there when WASMKUBE_TEST_CRASH_AFTER names the step).
	AfterStep func(step string)
}

// Installer runs install, uninstall and verify on one node.
type Installer struct {
	// Profile says where things go on this node: the detected distro profile with overrides applied.
	// All its paths are host paths.
	Profile distro.Profile
	Host    Host
	// RollbackTimeout bounds a rollback, which runs even when the run's own deadline has passed
	// (default 2 minutes).
	RollbackTimeout time.Duration
	// VerifyTimeout bounds each wait for the CRI to report the handler (default 1 minute), so that a
	// containerd that does not come back is rolled back well before the run's own deadline.
	VerifyTimeout time.Duration
}

// waitReady waits for the handler within VerifyTimeout.
func (in *Installer) waitReady(ctx context.Context, handler string, present bool) error {
	timeout := in.VerifyTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return in.Host.CRI.WaitReady(ctx, handler, present)
}

// ErrUnsupportedPlatform is returned by a Fetcher when the source has no binary for this node.
var ErrUnsupportedPlatform = errors.New("no shim binary for this platform")

// ErrInvalid marks invalid arguments.
var ErrInvalid = errors.New("invalid arguments")

// failure is an error with the result reason it maps to.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(reason string, err error) error { return &failure{reason: reason, err: err} }

// reasonOf finds the reason of an error.
func reasonOf(err error) string {
	var f *failure
	switch {
	case errors.As(err, &f):
		return f.reason
	case errors.Is(err, context.DeadlineExceeded):
		return installerapi.ReasonTimeout
	case errors.Is(err, ErrInvalid):
		return installerapi.ReasonInvalidArguments
	}
	return installerapi.ReasonInternal
}

// configReason maps a containerdcfg error to a reason; any other error is an invalid argument.
func configReason(err error) string {
	if reason, ok := ConfigReason(err); ok {
		return reason
	}
	return installerapi.ReasonInvalidArguments
}

// ConfigReason returns the result reason for an error of pkg/containerdcfg about a containerd config,
// and false for any other error.
func ConfigReason(err error) (string, bool) {
	switch {
	case errors.Is(err, containerdcfg.ErrParse):
		return installerapi.ReasonConfigUnparseable, true
	case errors.Is(err, containerdcfg.ErrUnknownVersion):
		return installerapi.ReasonConfigUnknownVersion, true
	case errors.Is(err, containerdcfg.ErrConflict):
		return installerapi.ReasonConfigConflict, true
	case errors.Is(err, containerdcfg.ErrContainerdVersion):
		return installerapi.ReasonContainerdVersionUnknown, true
	case errors.Is(err, containerdcfg.ErrUnsafeEdit):
		return installerapi.ReasonConfigUnsafe, true
	}
	return "", false
}

var (
	shimName    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	shimVersion = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

// BinaryName returns the file name of a handler's shim binary: containerd-shim-<handler>-<version>,
// with the version from the runtime type (handler spin-fast, io.containerd.spin.v2 ->
// containerd-shim-spin-fast-v2). The handler makes the name unique per Shim on a node, so Shims that
// share a runtime type never share a binary; the version has no '-', so no two (handler, version)
// pairs give one name. containerd finds the binary by the absolute path in runtime_type, not by name.
func BinaryName(handler, runtimeType string) (string, error) {
	parts := strings.Split(runtimeType, ".")
	if len(parts) < 3 || !shimName.MatchString(parts[len(parts)-2]) || !shimVersion.MatchString(parts[len(parts)-1]) {
		return "", fmt.Errorf("%w: runtime type %q: want a dotted name ending in <name>.<version>, e.g. io.containerd.spin.v2", ErrInvalid, runtimeType)
	}
	if !shimName.MatchString(handler) {
		return "", fmt.Errorf("%w: handler %q: want letters, digits, '-' and '_'", ErrInvalid, handler)
	}
	return "containerd-shim-" + handler + "-" + parts[len(parts)-1], nil
}

// configFile is the file holding the handler's runtime: the config file, or our drop-in file.
func (in *Installer) configFile(handler string) string {
	if in.Profile.Config.Mode == distro.ModeDropIn {
		return path.Join(in.Profile.Config.Path, "wasmkube-"+handler+".toml")
	}
	return in.Profile.Config.Path
}

// patchOptions are the containerdcfg options for this node: its containerd generation decides where the
// runtime goes, and a template's version comes from its base.
func (in *Installer) patchOptions() containerdcfg.PatchOptions {
	opts := containerdcfg.PatchOptions{ContainerdMajor: in.Profile.ContainerdMajor}
	if in.Profile.Config.Mode == distro.ModeTemplate {
		opts.DefaultVersion = in.Profile.Config.Version
	}
	return opts
}

// validateProfile checks what install and uninstall need of the profile.
func (in *Installer) validateProfile() error {
	t := in.Profile
	switch t.Config.Mode {
	case distro.ModeInPlace, distro.ModeTemplate, distro.ModeDropIn:
	default:
		return fmt.Errorf("%w: config mode %q (want %s, %s or %s)", ErrInvalid, t.Config.Mode, distro.ModeInPlace, distro.ModeTemplate, distro.ModeDropIn)
	}
	for _, p := range [][2]string{{"config path", t.Config.Path}, {"shim dir", t.ShimDir}, {"state file", t.StateFile}} {
		if !path.IsAbs(p[1]) {
			return fmt.Errorf("%w: %s %q is not an absolute host path", ErrInvalid, p[0], p[1])
		}
	}
	return nil
}

// probe proves that the shim binary runs on this node (Host.Prober) and returns what it said about
// itself; a binary that does not run fails with ReasonShimNotRunnable.
func (in *Installer) probe(ctx context.Context, binary string) (string, error) {
	if in.Host.Prober == nil {
		return "", nil
	}
	v, err := in.Host.Prober.Probe(ctx, binary)
	switch {
	case errors.Is(err, ErrNotRunnable):
		return "", fail(installerapi.ReasonShimNotRunnable, err)
	case err != nil:
		return "", fail(installerapi.ReasonVerifyFailed, err)
	}
	return v, nil
}

func (in *Installer) now() time.Time {
	if in.Host.Now != nil {
		return in.Host.Now()
	}
	return time.Now()
}

func (in *Installer) after(step string) {
	if in.Host.AfterStep != nil {
		in.Host.AfterStep(step)
	}
}

// stepper times steps into a result.
type stepper struct {
	in    *Installer
	r     *installerapi.Result
	start time.Time
}

func (in *Installer) begin(r *installerapi.Result) *stepper {
	return &stepper{in: in, r: r, start: in.now()}
}

// done records the step that ran since the previous one and, on success, runs the AfterStep hook.
func (s *stepper) done(step string, err error) error {
	now := s.in.now()
	s.r.AddStep(step, now.Sub(s.start))
	s.start = now
	if err == nil {
		s.in.after(step)
	}
	return err
}
