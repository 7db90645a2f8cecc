// Command systemctl is a stand-in for the host's systemctl in pkg/restart's tests, run inside a fake
// host root through chroot (systemd itself cannot run on the test machines). It appends its arguments
// to /var/log/systemctl.calls and behaves as configured by files under /etc/fake-systemd:
//
//	active          unit names (one a line) that `is-active` reports active (exit 0; others exit 3)
//	UNIT.pid        `restart UNIT` sends SIGTERM to this PID and waits until it has exited, as a
//	                synchronous `systemctl restart` of a supervised service would
//	UNIT.fail       `restart UNIT` prints this file and exits 1
package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	log, err := os.OpenFile("/var/log/systemctl.calls", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fail(2, "%v", err)
	}
	fmt.Fprintln(log, strings.Join(args, " "))
	log.Close()
	if len(args) == 0 {
		fail(2, "no command")
	}
	unit := args[len(args)-1]
	switch args[0] {
	case "is-active":
		active, _ := os.ReadFile("/etc/fake-systemd/active")
		if slices.Contains(strings.Fields(string(active)), unit) {
			os.Exit(0)
		}
		os.Exit(3)
	case "restart":
		if msg, err := os.ReadFile("/etc/fake-systemd/" + unit + ".fail"); err == nil {
			fail(1, "%s", msg)
		}
		b, err := os.ReadFile("/etc/fake-systemd/" + unit + ".pid")
		if err != nil {
			fail(5, "Unit %s.service not found.", unit)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			fail(2, "bad pid file: %v", err)
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			fail(1, "kill %d: %v", pid, err)
		}
		// No /proc in the chroot: signal 0 tells whether the PID still exists. The test's supervisor
		// reaps its children at once, so an exited daemon does not linger as a zombie.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil {
				os.Exit(0)
			}
		}
		fail(1, "PID %d did not exit", pid)
	}
	fail(2, "unsupported command %q", args[0])
}

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(code)
}
