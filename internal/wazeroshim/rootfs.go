package wazeroshim

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/wasmkube/wasmkube/internal/wazerorun"
)

// mountRootfs mounts the snapshot containerd passed at Create on bundle/rootfs and returns that
// directory; with no mounts the spec's root path (relative to the bundle) is used as it is.
func mountRootfs(bundle string, spec *specs.Spec, mounts []*types.Mount) (rootfs string, mounted bool, err error) {
	if len(mounts) == 0 {
		if spec.Root == nil || spec.Root.Path == "" {
			return "", false, fmt.Errorf("bundle %s: no rootfs mounts and no root.path in config.json", bundle)
		}
		rootfs = spec.Root.Path
		if !filepath.IsAbs(rootfs) {
			rootfs = filepath.Join(bundle, rootfs)
		}
		return rootfs, false, nil
	}
	rootfs = filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o711); err != nil {
		return "", false, fmt.Errorf("create %s: %w", rootfs, err)
	}
	if err := mount.All(mount.FromProto(mounts), rootfs); err != nil {
		return "", false, fmt.Errorf("mount the container's rootfs on %s: %w", rootfs, err)
	}
	return rootfs, true, nil
}

// unmountRootfs undoes mountRootfs (and anything mounted below bundle/rootfs).
func unmountRootfs(bundle string) error {
	rootfs := filepath.Join(bundle, "rootfs")
	if err := mount.UnmountRecursive(rootfs, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", rootfs, err)
	}
	return nil
}

// guestMounts maps the rootfs to "/" and every bind mount of a directory in the spec (Kubernetes
// volumes: emptyDir, configMap, secret, hostPath directories, ...) to its destination. WASI preopens
// are directories, so bind mounts of single files (/etc/hosts, /dev/termination-log) and kernel
// filesystems (proc, sysfs, tmpfs, devpts, ...) are not visible to the guest.
func guestMounts(rootfs string, spec *specs.Spec) []wazerorun.Mount {
	ms := []wazerorun.Mount{{HostPath: rootfs, GuestPath: "/", ReadOnly: spec.Root != nil && spec.Root.Readonly}}
	for _, m := range spec.Mounts {
		if m.Type != "bind" && !slices.Contains(m.Options, "bind") && !slices.Contains(m.Options, "rbind") {
			continue
		}
		if st, err := os.Stat(m.Source); err != nil || !st.IsDir() {
			continue
		}
		ms = append(ms, wazerorun.Mount{HostPath: m.Source, GuestPath: m.Destination, ReadOnly: slices.Contains(m.Options, "ro")})
	}
	return ms
}
