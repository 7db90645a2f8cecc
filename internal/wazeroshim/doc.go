// Package wazeroshim is containerd-shim-wazero-v1: a containerd runtime v2 shim (task API v3 over
// ttrpc, built on containerd's pkg/shim) that runs WASI preview1 modules with wazero, in pure Go.
//
// containerd starts one shim process per pod sandbox (or per stand-alone container, e.g. `ctr run`);
// since the shim speaks task API v3, containerd creates the pod's other containers in the sandbox's
// shim. The first container of a shim moves the shim process into its cgroup (for a pod: the
// sandbox's, under the pod's cgroup), so the guests' CPU time is accounted to the pod; per-container
// CPU limits inside a pod are not enforced separately (the pod-level limits the kubelet sets are).
// At Create the shim mounts the rootfs, finds the module (internal/wazeromodule: a .wasm
// file named by args[0], "path#func" accepted, or the first Wasm layer of a Wasm OCI artifact, read
// from containerd's content store), starts compiling it through the node's on-disk cache, and opens
// the stdio FIFOs. Create returns while the module compiles, so containerd's round trip to Start
// overlaps the compilation; Start waits for it, and a module that does not compile (or exceeds the
// memory limit, or lacks the entry function) fails Start with the reason. Start runs the guest
// (internal/wazerorun) with argv, environment, the rootfs as "/" (plus directory volumes), and
// stdout/stderr on the FIFOs, so `kubectl logs` works. Kill stops it promptly with 128+signal (137
// for SIGKILL); the OCI memory limit caps its linear memory.
//
// A pod's sandbox (pause) container, which containerd's CRI plugin also starts through this shim, is
// not Wasm: the shim holds it without a process, reports itself as its pid, and ends it on Kill
// (exit 0 on SIGTERM or SIGINT, like pause). The pod's network namespace is created by CRI, not by
// the sandbox process, so nothing else is needed; Wasm guests have no network access (WASI preview1).
package wazeroshim
