package scale

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// components are the control-plane processes whose CPU the benchmark reports, by /proc comm.
var components = []string{"kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok"}

// cpuTimes is the CPU time (user + system) of this test's child processes, by comm.
type cpuTimes map[string]time.Duration

// childCPU reads the CPU times of the processes this test started (envtest, kube-controller-manager,
// the scheduler, KWOK) from /proc. It is a diagnostic: processes it cannot read are left out.
func childCPU() cpuTimes {
	out := cpuTimes{}
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may contain spaces, so split after ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(b[open+1 : end])
		fields := strings.Fields(string(b[end+1:]))
		if len(fields) < 13 || fields[1] != self {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[comm] += time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return out
}

// since returns the CPU each component used after before was taken.
func (c cpuTimes) since(before cpuTimes) cpuTimes {
	out := cpuTimes{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}
