package wazeroshim

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupHost is where the host's cgroups live: the unified (v2) hierarchy at unifiedMount, or the
// v1 hierarchies. Tests point unifiedMount at a fake tree.
type cgroupHost struct {
	unified      bool
	unifiedMount string
}

// hostCgroups describes this host's cgroups.
func hostCgroups() cgroupHost {
	return cgroupHost{unified: cgroups.Mode() == cgroups.Unified, unifiedMount: "/sys/fs/cgroup"}
}

// cgroup is the cgroup of a shim's first container (a pod's sandbox), which the shim process itself
// joins before it reads or compiles anything for the pod: guests run in the shim, so their CPU time,
// their linear memory, the compiled code and the shim's heap are all charged to the pod.
type cgroup struct {
	path  string       // cgroupfs path, below every hierarchy's mount
	leave func() error // moves the shim back to where it was and removes the container's cgroup
}

// cgroupfsPath returns the cgroupfs path of an OCI linux.cgroupsPath: the path itself for the
// cgroupfs driver, or, for the systemd driver's "slice:prefix:name", the path runc's systemd driver
// gives the unit: the slice expanded into its parents, then "<prefix>-<name>.scope" (or name itself
// when it is a slice). An empty slice means system.slice.
//
//	kubepods-besteffort-pod1234.slice:cri-containerd:abc
//	-> /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-abc.scope
func cgroupfsPath(cgroupsPath string) (string, error) {
	if !strings.Contains(cgroupsPath, ":") {
		return cgroupsPath, nil
	}
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("cgroupsPath %q: the systemd form is slice:prefix:name", cgroupsPath)
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("cgroupsPath %q: invalid unit name %q", cgroupsPath, name)
	}
	if slice == "" {
		slice = "system.slice"
	}
	dir, err := expandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("cgroupsPath %q: %w", cgroupsPath, err)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		unit = prefix + "-" + name + ".scope"
	}
	return path.Join(dir, unit), nil
}

// expandSlice turns a systemd slice name into its cgroupfs path: each dash-separated prefix is a
// parent slice ("a-b.slice" is /a.slice/a-b.slice); "-.slice" is the root.
func expandSlice(slice string) (string, error) {
	name, ok := strings.CutSuffix(slice, ".slice")
	if !ok || name == "" || strings.Contains(slice, "/") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	if name == "-" {
		return "/", nil
	}
	var dir, prefix string
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			return "", fmt.Errorf("invalid slice name %q", slice)
		}
		dir += "/" + prefix + part + ".slice"
		prefix += part + "-"
	}
	return dir, nil
}

// joinCgroup creates the cgroup of an OCI cgroupsPath (either driver's form) with the container's
// CPU and pids limits, enables memory accounting in it and moves this process there. It returns an
// error naming the path when any of that fails: a guest never runs unaccounted. The container's
// memory limit caps its guest's linear memory (the shim kills a guest that needs more); it is not
// written to the cgroup, which holds every container of the pod and the shim itself: the pod's
// cgroup above it carries the pod's limit.
func (h cgroupHost) joinCgroup(cgroupsPath string, res *specs.LinuxResources) (*cgroup, error) {
	p, err := cgroupfsPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	limits := &specs.LinuxResources{Memory: &specs.LinuxMemory{}}
	if res != nil {
		limits.CPU, limits.Pids = res.CPU, res.Pids
	}
	var cg *cgroup
	if h.unified {
		cg, err = h.join2(p, limits, os.Getpid())
	} else {
		cg, err = join1(p, limits, os.Getpid())
	}
	if err != nil {
		return nil, fmt.Errorf("join the container's cgroup %s (cgroupsPath %q): %w", p, cgroupsPath, err)
	}
	return cg, nil
}

func join1(p string, limits *specs.LinuxResources, pid int) (*cgroup, error) {
	orig, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, fmt.Errorf("load the shim's current cgroups: %w", err)
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(p), limits)
	if err != nil {
		return nil, fmt.Errorf("create it: %w", err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		_ = cg.Delete()
		return nil, fmt.Errorf("move the shim (pid %d) into it: %w", pid, err)
	}
	return &cgroup{path: p, leave: func() error {
		if err := orig.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("move the shim out of cgroup %s: %w", p, err)
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
		return nil
	}}, nil
}

func (h cgroupHost) join2(p string, limits *specs.LinuxResources, pid int) (*cgroup, error) {
	origPath, err := cgroup2.PidGroupPath(pid)
	if err != nil {
		return nil, fmt.Errorf("read the shim's current cgroup: %w", err)
	}
	cg, err := cgroup2.NewManager(h.unifiedMount, p, cgroup2.ToResources(limits))
	if err != nil {
		return nil, fmt.Errorf("create it: %w", err)
	}
	if err := cg.AddProc(uint64(pid)); err != nil {
		_ = cg.Delete()
		return nil, fmt.Errorf("move the shim (pid %d) into it: %w", pid, err)
	}
	return &cgroup{path: p, leave: func() error {
		orig, err := cgroup2.Load(origPath, cgroup2.WithMountpoint(h.unifiedMount))
		if err == nil {
			err = orig.AddProc(uint64(pid))
		}
		if err != nil {
			return fmt.Errorf("move the shim out of cgroup %s: %w", p, err)
		}
		if err := cg.Delete(); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
		return nil
	}}, nil
}

// removeCgroup removes the cgroup of an OCI cgroupsPath if it exists; the shim that joined it has died.
func (h cgroupHost) removeCgroup(cgroupsPath string) error {
	if cgroupsPath == "" {
		return nil
	}
	p, err := cgroupfsPath(cgroupsPath)
	if err != nil {
		return err
	}
	if h.unified {
		cg, err := cgroup2.Load(p, cgroup2.WithMountpoint(h.unifiedMount))
		if err != nil {
			return nil
		}
		if err := cg.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
		return nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(p))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil
	} else if err != nil {
		return fmt.Errorf("load cgroup %s: %w", p, err)
	}
	return cg.Delete()
}
