// Package installer is the transaction the node-installer runs on a node: fetch a shim binary, place it
// atomically, patch containerd's configuration, restart containerd only when its configuration changed,
// wait until the CRI reports the runtime handler, and roll everything back when any of that fails. It
// also removes an installation again (Uninstall) and checks a handler (Verify). The binary is fetched and
// verified before anything else changes; only making it durable and renaming it into place runs during
// the restart, and finishes before the handler is verified.
//
// Everything the transaction touches on the host goes through Host: file operations rooted at the host
// root (Files), the shim source (Fetcher), the containerd restart (Restarter), the CRI readiness check
// (Waiter) and a clock. internal/nodeinstaller wires the real ones (pkg/shimsource, pkg/restart, pkg/cri);
// unit tests inject failures; the acceptance tests drive real containerd daemons.
//
// # Many Shims on one node
//
// Every operation (install, uninstall, verify) holds the node lock: an exclusive flock on node.lock
// beside the state file, which the kernel releases however its holder ends. Waiting for it is bounded
// by the operation's deadline; an operation that does not get it fails with reason NodeBusy before it
// changed anything.
//
// Each state entry belongs to one Shim and names what that Shim owns on the node: its managed block in
// the configuration (found by handler), its binary (containerd-shim-<handler>-<version>, so Shims that
// share a runtime type never share a binary), its backups (backup/<handler>/) and the entry itself. An
// install for a handler another Shim owns is refused (HandlerConflict). Uninstall removes exactly its
// own block and binary: the patcher's removal gives back the bytes from before the block, so other
// Shims' blocks and anyone's edits stay, and the file that held only wasmkube's blocks is byte for byte
// what it was before them. A rollback puts back only its own block as it was (RestoreRuntime), not the
// whole file. The configuration keeps its owner, group, mode and extended attributes through every
// write.
//
// # Crash safety
//
// The state file (Profile.StateFile, JSON, written atomically) records intent before each change: before
// the first change of a transaction it records the phase "pending" together with backups of the
// configuration bytes and the binary as they were; before the configuration is written it records that
// a restart is owed; after the restart it records "restarted". A run killed at any point is finished by
// the next run of the same command: it keeps the backups of the interrupted transaction (so a rollback
// still restores what was there before it), restarts containerd when a restart is owed and was not
// done, and otherwise only verifies. The temporary files and fetch directory a killed run left are
// removed by the next run, under the lock. Another Shim's operation may run in between; it leaves the
// interrupted transaction's block alone.
//
// # Restarts
//
// containerd reads its configuration only at start, so a changed configuration needs a restart. A
// changed binary alone does not: containerd starts a shim binary for each new pod sandbox, and running
// shims keep the old file (the rename leaves their inode alone). A re-run that finds the binary and the
// configuration in place changes nothing and does not restart.
//
// # How containerd finds the binary
//
// The installer writes the binary's absolute path as runtime_type, on every containerd version, and no
// runtime_path. containerd 1.x ignores runtime_path and would look the shim up on its PATH by the name
// derived from runtime_type. containerd 2.x honours runtime_path when it starts a pod sandbox, but after a
// containerd restart it reloads a running pod's other containers by runtime name alone and looks that name
// up on its PATH, so their tasks are lost (containerd/containerd#10811; the end-to-end test saw running
// Wasm pods die on the restart of an upgrade). An absolute runtime_type is resolved as a path in both
// cases, and spares placing links in system directories (read-only on some distros).
package installer
