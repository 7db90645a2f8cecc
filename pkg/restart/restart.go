package restart

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/cri"
)

// Restarter restarts containerd and returns once it answers on its CRI socket again (RuntimeReady).
// The caller's context bounds the whole restart.
type Restarter interface {
	Restart(ctx context.Context) error
}

// Errors callers branch on (wrapped; test with errors.Is).
var (
	// ErrUnknownMethod: New was given a method it does not know.
	ErrUnknownMethod = errors.New("unknown restart method")
	// ErrNoActiveUnit: none of the systemd unit candidates is active on the host.
	ErrNoActiveUnit = errors.New("no active systemd unit")
	// ErrNotFound: no process of the configured name runs.
	ErrNotFound = errors.New("containerd process not found")
	// ErrAmbiguous: several processes of the configured name run and the command line does not tell
	// which one is the node's containerd.
	ErrAmbiguous = errors.New("ambiguous containerd process")
)

// pollInterval is how often the strategies look at /proc while waiting for a new process (a scan
// of every process); exitPollInterval how often Signal checks whether the signalled process exited
// (one small read): containerd takes about 20 ms to stop, so a 20 ms poll there made a restart take
// one poll longer whenever the stop took a little longer.
const (
	pollInterval     = 20 * time.Millisecond
	exitPollInterval = 2 * time.Millisecond
)

// Config holds the settings of every strategy; each uses the fields it needs.
type Config struct {
	// HostRoot is the host's root as mounted in the installer (e.g. /host); "" or "/" means this
	// machine's root. Systemd only.
	HostRoot string
	// Units are the systemd unit candidates, most likely first (e.g. k3s, k3s-agent). Systemd only.
	Units []string
	// ProcRoot is the /proc showing the host's processes (the installer runs with hostPID); "" means
	// /proc. Signal only.
	ProcRoot string
	// Process is the process name (/proc/PID/comm) of containerd; "" means "containerd". Signal only.
	Process string
	// Match are strings that name the node's containerd on its command line, as the host sees them:
	// its config file or socket path. They pick one process when several of that name run. Signal only.
	Match []string
	// Socket is the CRI socket to wait for, as a path the caller can open (e.g.
	// /host/run/containerd/containerd.sock). Required.
	Socket string
}

// New returns the Restarter for a restart method.
func New(method installerapi.RestartMethod, c Config) (Restarter, error) {
	if c.Socket == "" {
		return nil, errors.New("restart: no CRI socket to wait for: set the socket path")
	}
	switch method {
	case installerapi.RestartSystemd:
		if len(c.Units) == 0 {
			return nil, errors.New("restart systemd: no unit candidates given")
		}
		return &Systemd{HostRoot: c.HostRoot, Units: c.Units, Socket: c.Socket}, nil
	case installerapi.RestartSignal:
		return &Signal{ProcRoot: c.ProcRoot, Process: c.Process, Match: c.Match, Socket: c.Socket}, nil
	case installerapi.RestartNone:
		return None{Socket: c.Socket}, nil
	}
	return nil, fmt.Errorf("%w %q: want %s, %s or %s", ErrUnknownMethod, method, installerapi.RestartSystemd, installerapi.RestartSignal, installerapi.RestartNone)
}

// Systemd restarts a systemd unit through the host's own systemctl, run as
// `chroot HOST-ROOT systemctl restart UNIT`, picking the first of Units that
// `systemctl is-active` reports active.
//
// Why chroot and not `nsenter -t 1 -m -u -i -n -p`: nsenter needs ptrace-level access to PID 1 (and
// its namespaces), which hardened sandboxes refuse even to root, this project's CI machines included,
// while chroot into the host root mounted in the installer pod always works for a privileged pod. The
// host's systemctl then talks to the host's systemd over /run/systemd/private (visible through the
// host root), so the unit restarts exactly as an administrator's `systemctl restart` would, and the
// installer's container image needs no systemctl of its own.
type Systemd struct {
	HostRoot string
	Units    []string
	Socket   string
	// Run runs a command and returns its combined output; nil runs it with os/exec.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Restart restarts the first active unit and waits for the CRI socket.
func (s *Systemd) Restart(ctx context.Context) error {
	unit, err := s.activeUnit(ctx)
	if err != nil {
		return err
	}
	if out, err := s.systemctl(ctx, "restart", unit); err != nil {
		return fmt.Errorf("restart systemd unit %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return waitSocket(ctx, s.Socket)
}

// activeUnit returns the first of Units that `systemctl is-active --quiet` reports active.
func (s *Systemd) activeUnit(ctx context.Context) (string, error) {
	var inactive []string
	for _, u := range s.Units {
		out, err := s.systemctl(ctx, "is-active", "--quiet", u)
		if err == nil {
			return u, nil
		}
		// is-active exits non-zero (3, or 4 for an unknown unit) when the unit is not active; chroot's
		// own failures (125 chroot failed, 126 not executable, 127 no systemctl) are errors.
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() >= 125 {
			return "", fmt.Errorf("run systemctl is-active %s in host root %s: %w: %s", u, s.root(), err, strings.TrimSpace(string(out)))
		}
		inactive = append(inactive, u)
	}
	return "", fmt.Errorf("%w among %s in host root %s: choose the restart method or unit explicitly", ErrNoActiveUnit, strings.Join(inactive, ", "), s.root())
}

func (s *Systemd) root() string {
	if s.HostRoot == "" {
		return "/"
	}
	return s.HostRoot
}

// systemctl runs the host's systemctl with args, chrooted into the host root unless that is "/".
func (s *Systemd) systemctl(ctx context.Context, args ...string) ([]byte, error) {
	name, argv := "systemctl", args
	if root := s.root(); root != "/" {
		name, argv = "chroot", append([]string{root, "systemctl"}, args...)
	}
	if s.Run != nil {
		return s.Run(ctx, name, argv...)
	}
	return exec.CommandContext(ctx, name, argv...).CombinedOutput()
}

// Signal restarts a supervised containerd (k3d, our local cluster): it finds the process through
// ProcRoot, sends it SIGTERM, waits until it has exited (a zombie counts as exited: its parent may be
// slow to reap it), waits for the supervisor to start a new process with the same command line, and
// then for the CRI socket. Without a supervisor nothing comes back and Restart fails when ctx ends.
type Signal struct {
	ProcRoot string
	Process  string
	Match    []string
	Socket   string

	found *Process // by Prepare, for the next Restart
}

func (s *Signal) procRoot() string {
	if s.ProcRoot == "" {
		return "/proc"
	}
	return s.ProcRoot
}

func (s *Signal) process() string {
	if s.Process == "" {
		return "containerd"
	}
	return s.Process
}

// Find returns the node's containerd process: the only live process named Process, or among several
// the only one whose command line names one of Match. Otherwise ErrNotFound or ErrAmbiguous.
func (s *Signal) Find() (Process, error) {
	procs, err := Processes(s.procRoot())
	if err != nil {
		return Process{}, err
	}
	var named []Process
	for _, p := range procs {
		if p.Comm == s.process() && !p.Zombie() {
			named = append(named, p)
		}
	}
	switch len(named) {
	case 0:
		return Process{}, fmt.Errorf("%w: no live process named %q in %s", ErrNotFound, s.process(), s.procRoot())
	case 1:
		return named[0], nil
	}
	var matched []Process
	for _, p := range named {
		if slices.ContainsFunc(s.Match, p.Names) {
			matched = append(matched, p)
		}
	}
	if len(matched) == 1 {
		return matched[0], nil
	}
	var list []string
	for _, p := range named {
		list = append(list, fmt.Sprintf("PID %d: %s", p.PID, strings.Join(p.Args, " ")))
	}
	return Process{}, fmt.Errorf("%w: %d processes named %q and %d of them name any of %q on their command line; set the config file or socket path that identifies the node's containerd (%s)",
		ErrAmbiguous, len(named), s.process(), len(matched), s.Match, strings.Join(list, "; "))
}

// Prepare finds the node's containerd ahead of the next Restart (a scan of every process, a few
// milliseconds), so that a caller can do it while it does other work. Restart signals the process
// found if it still runs (same PID and start time) and otherwise finds it again. Do not call Prepare
// and Restart at the same time.
func (s *Signal) Prepare() error {
	p, err := s.Find()
	if err != nil {
		return fmt.Errorf("restart by signal: %w", err)
	}
	s.found = &p
	return nil
}

// target returns the process Prepare found if it still runs unchanged, else what Find finds.
func (s *Signal) target() (Process, error) {
	if p := s.found; p != nil {
		s.found = nil
		if cur, err := ReadProcess(s.procRoot(), p.PID); err == nil && !cur.Zombie() && cur.StartTime == p.StartTime {
			return *p, nil
		}
	}
	return s.Find()
}

// settleTimeout bounds how long Restart waits for a containerd that is between two processes (a
// supervisor starts it again within a second or two).
const settleTimeout = 10 * time.Second

// Restart signals containerd and waits for its successor and the CRI socket. When no process or no
// single process is found, containerd may be between two processes (a restart an installer began
// before it was killed): Restart then waits for the CRI socket, up to settleTimeout, and looks once more.
func (s *Signal) Restart(ctx context.Context) error {
	old, err := s.target()
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrAmbiguous) {
		settle, cancel := context.WithTimeout(ctx, settleTimeout)
		if waitSocket(settle, s.Socket) == nil {
			old, err = s.Find()
		}
		cancel()
	}
	if err != nil {
		return fmt.Errorf("restart by signal: %w", err)
	}
	if err := syscall.Kill(old.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("restart by signal: SIGTERM containerd PID %d: %w", old.PID, err)
	}
	err = wait.PollUntilContextCancel(ctx, exitPollInterval, true, func(context.Context) (bool, error) {
		p, err := ReadProcess(s.procRoot(), old.PID)
		if errors.Is(err, errGone) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return p.Zombie() || p.StartTime != old.StartTime, nil
	})
	if err != nil {
		return fmt.Errorf("restart by signal: containerd PID %d did not exit after SIGTERM: %w", old.PID, err)
	}
	var last error
	err = wait.PollUntilContextCancel(ctx, pollInterval, true, func(context.Context) (bool, error) {
		_, last = s.successor(old)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("restart by signal: containerd PID %d exited but no new %q process with the same command line appeared (is containerd supervised? without a supervisor use the systemd or none method): %w (last: %v)",
			old.PID, s.process(), err, last)
	}
	return waitSocket(ctx, s.Socket)
}

// successor finds the process that replaced old: same name and command line, another process.
func (s *Signal) successor(old Process) (Process, error) {
	procs, err := Processes(s.procRoot())
	if err != nil {
		return Process{}, err
	}
	var found []Process
	for _, p := range procs {
		if p.Comm == old.Comm && !p.Zombie() && slices.Equal(p.Args, old.Args) && (p.PID != old.PID || p.StartTime != old.StartTime) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return Process{}, fmt.Errorf("%w: no new process running %s", ErrNotFound, strings.Join(old.Args, " "))
	case 1:
		return found[0], nil
	}
	return Process{}, fmt.Errorf("%w: %d new processes running %s", ErrAmbiguous, len(found), strings.Join(old.Args, " "))
}

// None restarts nothing (k0s reloads its containerd drop-ins itself); Restart only waits for the socket.
type None struct {
	Socket string
}

// Restart waits until the CRI socket answers with RuntimeReady.
func (n None) Restart(ctx context.Context) error { return waitSocket(ctx, n.Socket) }

func waitSocket(ctx context.Context, socket string) error {
	if _, err := cri.WaitReady(ctx, socket, "", true); err != nil {
		return fmt.Errorf("wait for containerd after restart: %w", err)
	}
	return nil
}
