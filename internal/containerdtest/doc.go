// Package containerdtest starts real containerd daemons on private paths for tests: Debian's
// containerd 1.6 (V1) or containerd 2.4.2 from the tool cache (V2), located through internal/testenv.
// Each daemon has its own root, state, gRPC and ttrpc sockets (in a short /tmp/wk* directory, so unix
// socket paths stay below 108 bytes), runc root, CNI conflist, bridge and IPAM data, NRI disabled, and a
// locally built pause image pinned as the sandbox image, so many daemons from many test packages run
// side by side.
//
// Typical use:
//
//	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Supervise: true, HostRoot: root})
//	pod := d.RunPod("demo", "wazero")     // sandbox + container through CRI with that handler
//	d.Restart()                           // SIGTERM; the supervisor starts containerd again
//	st := d.WaitReady("wazero", true)     // *cri.Status
//
// To patch the config before the first start, allocate the paths first:
//
//	p := containerdtest.NewPaths(t, root)
//	cfg, _ := containerdcfg.AddRuntime(containerdtest.Config(3, p), rt, containerdcfg.PatchOptions{})
//	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Paths: &p, Config: cfg})
//
// With Supervise, the daemon behaves like k3d's or our local cluster's containerd: its parent (the
// harness) starts it again whenever it exits, which is what the node installer's `signal` restart
// relies on. The harness reaps its children at once, so an exited daemon never lingers as a zombie.
//
// Everything a daemon creates is removed by t.Cleanup: pod sandboxes (through CRI), the daemon, runc
// containers and shims left by a daemon stopped with pods running, shim sockets, mounts, the bridge and
// the files. Under -short, Start and NewPaths skip the test.
//
// Helper binaries (the pause command, test stand-ins) are built by Build once per content and kept in
// $WASMKUBE_CACHE_DIR/testbin.
package containerdtest
