package wazeroshim

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// errSystemdCgroup: a systemd-style cgroupsPath ("slice:prefix:name") needs the systemd driver.
var errSystemdCgroup = errors.New("systemd cgroup paths are not supported (use the cgroupfs driver)")

// cgroup is the cgroup of a shim's first container (a pod's sandbox), which the shim process itself
// joins: guests run in the shim, so their CPU time (and the shim's memory) is accounted to the pod.
type cgroup struct {
	path  string
	leave func() error // moves the shim back to where it was and removes the container's cgroup
}

// joinCgroup creates the cgroup at path (an OCI linux.cgroupsPath in cgroupfs form) with the
// container's CPU and pids limits and moves this process into it. Linear memory is capped by
// the runtime instead of memory.limit_in_bytes, so that exceeding it is a clear guest failure
// rather than the shim being OOM-killed.
func joinCgroup(path string, res *specs.LinuxResources) (*cgroup, error) {
	if strings.Contains(path, ":") {
		return nil, fmt.Errorf("cgroup %s: %w", path, errSystemdCgroup)
	}
	limits := &specs.LinuxResources{} // never nil: cgroup1 and cgroup2 both need one
	if res != nil {
		limits.CPU, limits.Pids = res.CPU, res.Pids
	}
	pid := os.Getpid()
	if cgroups.Mode() == cgroups.Unified {
		return joinCgroup2(path, limits, pid)
	}
	orig, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, fmt.Errorf("load the shim's current cgroups: %w", err)
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), limits)
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		_ = cg.Delete()
		return nil, fmt.Errorf("move the shim (pid %d) into cgroup %s: %w", pid, path, err)
	}
	return &cgroup{path: path, leave: func() error {
		if err := orig.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("move the shim out of cgroup %s: %w", path, err)
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", path, err)
		}
		return nil
	}}, nil
}

func joinCgroup2(path string, limits *specs.LinuxResources, pid int) (*cgroup, error) {
	origPath, err := cgroup2.PidGroupPath(pid)
	if err != nil {
		return nil, fmt.Errorf("read the shim's current cgroup: %w", err)
	}
	cg, err := cgroup2.NewManager("/sys/fs/cgroup", path, cgroup2.ToResources(limits))
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		_ = cg.Delete()
		return nil, fmt.Errorf("move the shim (pid %d) into cgroup %s: %w", pid, path, err)
	}
	return &cgroup{path: path, leave: func() error {
		orig, err := cgroup2.Load(origPath)
		if err == nil {
			err = orig.AddProc(uint64(pid))
		}
		if err != nil {
			return fmt.Errorf("move the shim out of cgroup %s: %w", path, err)
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", path, err)
		}
		return nil
	}}, nil
}

// removeCgroup removes the cgroup at path if it exists; the shim that joined it has died.
func removeCgroup(path string) error {
	if path == "" || strings.Contains(path, ":") {
		return nil
	}
	if cgroups.Mode() == cgroups.Unified {
		cg, err := cgroup2.Load(path)
		if err != nil {
			return nil
		}
		return cg.Delete()
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil
	} else if err != nil {
		return fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return cg.Delete()
}
