package restart

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Process is one entry of a /proc tree.
type Process struct {
	PID  int
	PPID int
	// Comm is the kernel's short command name (as in /proc/PID/comm: at most 15 bytes).
	Comm string
	// Args is the command line (/proc/PID/cmdline); empty for kernel threads and zombies.
	Args []string
	// State is the one-letter state from /proc/PID/stat: R, S, D, Z (zombie), ...
	State byte
	// StartTime is the start time in clock ticks since boot (stat field 22); with PID it identifies a
	// process even when PIDs are reused.
	StartTime uint64
}

// Zombie reports whether the process has exited and waits for its parent to reap it.
func (p Process) Zombie() bool { return p.State == 'Z' || p.State == 'X' }

// Names reports whether one of the command line's arguments is s, or ends in "="+s (--config=s).
func (p Process) Names(s string) bool {
	for _, a := range p.Args {
		if a == s || strings.HasSuffix(a, "="+s) {
			return true
		}
	}
	return false
}

// errGone means the process vanished while it was being read.
var errGone = errors.New("process gone")

// ReadProcess reads one process from procRoot (normally /proc).
func ReadProcess(procRoot string, pid int) (Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return Process{}, fmt.Errorf("read %s/stat: %w", dir, errGone)
		}
		return Process{}, fmt.Errorf("read %s/stat: %w", dir, err)
	}
	p, err := parseStat(stat)
	if err != nil {
		return Process{}, fmt.Errorf("parse %s/stat: %w", dir, err)
	}
	if cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(cmdline) > 0 {
		p.Args = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	}
	return p, nil
}

// parseStat parses /proc/PID/stat: "PID (comm) S PPID ... starttime(22) ...". comm may hold spaces and
// parentheses, so the fields after it are found from the last ')'.
func parseStat(b []byte) (Process, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Process{}, fmt.Errorf("malformed stat %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return Process{}, fmt.Errorf("malformed stat pid: %w", err)
	}
	fields := strings.Fields(string(b[end+1:])) // fields[0] is stat field 3 (state)
	if len(fields) < 20 {
		return Process{}, fmt.Errorf("malformed stat: %d fields after comm", len(fields))
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return Process{}, fmt.Errorf("malformed stat ppid: %w", err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return Process{}, fmt.Errorf("malformed stat starttime: %w", err)
	}
	return Process{PID: pid, PPID: ppid, Comm: string(b[open+1 : end]), State: fields[0][0], StartTime: start}, nil
}

// Processes lists every process in procRoot (normally /proc; with hostPID, the host's processes).
// Processes that exit while being listed are left out.
func Processes(procRoot string) ([]Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes in %s: %w", procRoot, err)
	}
	var procs []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		p, err := ReadProcess(procRoot, pid)
		if errors.Is(err, errGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	return procs, nil
}
