package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

// cgroupMounts lists the mount points of every cgroup (v1) and cgroup2 hierarchy.
func cgroupMounts() (v1, v2 []string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		switch fields[sep+1] {
		case "cgroup":
			v1 = append(v1, fields[4])
		case "cgroup2":
			v2 = append(v2, fields[4])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	return v1, v2, nil
}

// createCgroupRoot creates the kubelet's cgroup root in every cgroup v1 hierarchy (the kubelet
// refuses a root that does not exist), copying cpuset.cpus and cpuset.mems from the parent so that
// processes may join it. On a cgroup v2-only host it creates it in the unified hierarchy.
func createCgroupRoot(root string) error {
	v1, v2, err := cgroupMounts()
	if err != nil {
		return err
	}
	hierarchies := v1
	if len(v1) == 0 {
		hierarchies = v2
	}
	for _, h := range hierarchies {
		dir := filepath.Join(h, root)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			parent, err := os.ReadFile(filepath.Join(h, f))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), parent, 0o644)
			}
			if err != nil {
				return fmt.Errorf("set %s of cgroup %s: %w", f, dir, err)
			}
		}
	}
	return nil
}

// removeCgroupRoot removes the cgroup tree below root in every hierarchy, leaves first. A cgroup
// that still holds a process cannot be removed: the error names it.
func removeCgroupRoot(root string) error {
	v1, v2, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range append(v1, v2...) {
		top := filepath.Join(h, root)
		var dirs []string
		err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list cgroups below %s: %w", top, err))
			continue
		}
		// WalkDir visits parents before children: removing in reverse order removes leaves first.
		for _, d := range slices.Backward(dirs) {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				procs, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w (processes: %q)", d, err, strings.Fields(string(procs))))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountAll unmounts every mount point below dir, deepest first, and returns those it could not.
func unmountAll(dir string) error {
	mounts, err := containerdtest.MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}
