// Package installer holds the node-installer's acceptance tests: they build the real node-installer
// binary and run it against a temporary host root whose containerd (Debian's 1.6 with a version-2
// config, 2.4.2 with version 3 and 4) runs supervised by internal/containerdtest, and prove the installer's
// promises: pods start through the new handler, re-runs change nothing, uninstall restores the config
// byte for byte, failures roll back, bad configs are left alone, a SIGKILL after any step converges,
// OCI and HTTPS sources work through the binary, and dry runs work on every distro fixture.
package installer
