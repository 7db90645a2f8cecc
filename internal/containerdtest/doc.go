// Package containerdtest starts real containerd daemons on private paths for tests: Debian's
// containerd 1.6 or containerd 2.4.2 from the tool cache (see internal/testenv), each with its own
// root, state, gRPC and ttrpc sockets, runc root, CNI configuration and bridge, and a locally built pause
// image pinned as the sandbox image, so several daemons (from several test packages) run side by side.
//
// A Daemon can be supervised: like k3d's or our local cluster's containerd, it is started again by its
// parent whenever it exits, which is what the node installer's `signal` restart relies on. The harness
// is that parent and reaps its children at once, so an exited daemon never lingers as a zombie.
//
// Everything a Daemon creates (processes, shims, mounts, the bridge, files) is removed by t.Cleanup.
// Under -short, Start skips the test (through internal/testenv).
package containerdtest
