// Package wazeroshim is containerd-shim-wazero-v1: a containerd runtime v2 shim (task API v3 over
// ttrpc, built on containerd's pkg/shim) that runs WASI preview1 modules with wazero, in pure Go.
//
// containerd starts one shim process per pod sandbox (or per stand-alone container, e.g. `ctr run`);
// since the shim speaks task API v3, containerd creates the pod's other containers in the sandbox's
// shim. The first container of a shim moves the shim process into its cgroup (for a pod: the
// sandbox's, under the pod's cgroup; the cgroupfs driver's path or the systemd driver's
// slice:prefix:name, expanded as runc does; cgroup v1 or v2) before anything is read or compiled
// for it, so the guests' CPU time, their linear memory, the compiled code and the shim's heap are
// charged to the pod, whose limits the kubelet sets; a container whose cgroup cannot be joined
// fails to be created. Per-container CPU limits inside a pod are not enforced separately (the
// pod-level limits are); a container's memory limit caps its guest's linear memory, and a guest
// that needs more is killed (exit 137) and reported OOM-killed (a TaskOOM event, which CRI turns
// into the OOMKilled reason).
//
// At Create the shim mounts the rootfs, finds the module (internal/wazeromodule: a .wasm
// file named by args[0], "path#func" accepted, or the first Wasm layer of a Wasm OCI artifact, read
// from containerd's content store), starts compiling it through the node's on-disk cache, and opens
// the stdio FIFOs. Create returns while the module compiles, so containerd's round trip to Start
// overlaps the compilation; Start waits for it, and a module that does not compile (or exceeds the
// memory limit, or lacks the entry function) fails Start with the reason. Start runs the guest
// (internal/wazerorun) with argv, environment, the rootfs as "/" (plus directory volumes, each
// confined by internal/wazerofs, read-only where the spec says so, with the container user's
// credentials), and stdout/stderr on the FIFOs, so `kubectl logs` works. Kill stops it promptly
// with 128+signal (137 for SIGKILL).
//
// A pod's sandbox (pause) container, which containerd's CRI plugin also starts through this shim, is
// not Wasm: the shim holds it without a process, reports itself as its pid, and ends it on Kill
// (exit 0 on SIGTERM or SIGINT, like pause). The pod's network namespace is created by CRI, not by
// the sandbox process, so nothing else is needed; Wasm guests have no network access (WASI preview1).
package wazeroshim
