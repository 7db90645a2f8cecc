package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wasmkube/wasmkube/pkg/restart"
)

// Stop timeouts: SIGTERM, then SIGKILL after stopGrace; a process that survives SIGKILL for
// killGrace is an error.
const (
	stopGrace = 5 * time.Second
	killGrace = 10 * time.Second
)

// Process is one process the cluster started.
type Process struct {
	// Name is the component: etcd, kube-apiserver, containerd-supervisor, ...
	Name string `json:"name"`
	// PID and StartTime (clock ticks since boot, /proc/PID/stat field 22) identify the process even
	// after its PID is reused.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	// Args is its command line.
	Args []string `json:"args"`
	// Log receives its stdout and stderr.
	Log string `json:"log"`
}

// startProcess starts argv in a session of its own with stdout and stderr appended to logPath. A
// goroutine reaps it when it exits (in a process that outlives it, like a test); a CLI that exits
// first leaves it to init.
func startProcess(name string, argv, env []string, logPath string) (Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Process{}, fmt.Errorf("start %s: open log: %w", name, err)
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	p := Process{Name: name, PID: cmd.Process.Pid, Args: argv, Log: logPath}
	// A process that already exited (and may have been reaped) keeps StartTime 0: never Alive.
	if info, err := restart.ReadProcess("/proc", p.PID); err == nil {
		p.StartTime = info.StartTime
	}
	return p, nil
}

// Alive reports whether the process still runs: its PID exists with the same start time and is not
// a zombie waiting for its parent.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	info, err := restart.ReadProcess("/proc", p.PID)
	return err == nil && info.StartTime == p.StartTime && !info.Zombie()
}

// stop sends SIGTERM, then SIGKILL after grace, and waits until the process is gone.
func (p Process) stop(ctx context.Context, grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (PID %d): %w", p.Name, p.PID, err)
	}
	if p.waitGone(ctx, grace) {
		return nil
	}
	if p.Alive() {
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %s (PID %d): %w", p.Name, p.PID, err)
		}
	}
	if p.waitGone(ctx, killGrace) {
		return nil
	}
	return fmt.Errorf("stop %s (PID %d): still running %s after SIGKILL", p.Name, p.PID, killGrace)
}

func (p Process) waitGone(ctx context.Context, timeout time.Duration) bool {
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return !p.Alive(), nil
	})
	return err == nil
}

// tail returns the last lines of the process's log.
func (p Process) tail(lines int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.Log, err)
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(all)-lines, p.Log)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// processesMentioning lists the live processes whose command line has an argument containing s.
func processesMentioning(s string) ([]restart.Process, error) {
	procs, err := restart.Processes("/proc")
	if err != nil {
		return nil, err
	}
	var found []restart.Process
	for _, p := range procs {
		if p.PID == os.Getpid() || p.Zombie() {
			continue
		}
		for _, a := range p.Args {
			if strings.Contains(a, s) {
				found = append(found, p)
				break
			}
		}
	}
	return found, nil
}
