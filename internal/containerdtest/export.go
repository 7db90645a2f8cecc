package containerdtest

import (
	"fmt"
	"os"
)

// The functions below serve callers without a testing.TB that run containerd daemons of their own
// (test/cluster's local cluster and its CLI), so that they share the pause image and the clean-up
// code instead of keeping second copies.

// PausePackage is the import path of the pause command that PauseImage packages.
const PausePackage = pausePackage

// BuildIn is Build without a testing.TB: it compiles the standard-library-only main package pkg
// into the cache directory dir (created if missing) unless a binary of the same sources is there,
// and returns the binary's path. The go command must run inside this module.
func BuildIn(dir, pkg string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build cache %s: %w", dir, err)
	}
	return cache.get("bin "+dir+" "+pkg, func() (string, error) { return buildCached(dir, pkg) })
}

// PauseImageTarball builds the pause command into the cache directory dir (see BuildIn) and returns
// the path of its PauseImage tarball, in the `docker save` format that `ctr images import` reads.
func PauseImageTarball(dir string) (string, error) {
	bin, err := BuildIn(dir, pausePackage)
	if err != nil {
		return "", err
	}
	return pauseTarball(bin)
}

// KillShims kills the shims serving the containerd at socket and their children, waits until they
// are gone and removes their sockets from /run/containerd/s.
func KillShims(socket string) error { return killShims(socket) }

// DeleteContainers force-deletes every container that runc still knows under runcRoot (one directory
// per containerd namespace), with its processes and cgroups.
func DeleteContainers(runc, runcRoot string) error { return deleteContainers(runc, runcRoot) }

// MountsUnder lists the mount points strictly below any of dirs, deepest first.
func MountsUnder(dirs ...string) ([]string, error) { return mountsUnder(dirs) }
