// Package installer is the transaction the node-installer runs on a node: fetch a shim binary, place it
// atomically, patch containerd's configuration, restart containerd only when its configuration changed,
// wait until the CRI reports the runtime handler, and roll everything back when any of that fails. It
// also removes an installation again (Uninstall) and checks a handler (Verify). The binary is fetched and
// verified before anything else changes; only making it durable and renaming it into place runs during
// the restart, and finishes before the handler is verified.
//
// Everything the transaction touches on the host goes through Host: file operations rooted at the host
// root (Files), the shim source (Fetcher), the containerd restart (Restarter), the CRI readiness check
// (Waiter) and a clock. cmd/node-installer wires the real ones (pkg/shimsource, pkg/restart, pkg/cri);
// unit tests inject failures; the acceptance tests drive real containerd daemons.
//
// # Crash safety
//
// The state file (Target.StateFile, JSON, written atomically) records intent before each change: before
// the first change of a transaction it records the phase "pending" together with backups of the
// configuration bytes and the binary as they were; before the configuration is written it records that
// a restart is owed; after the restart it records "restarted". A run killed at any point is finished by
// the next run of the same command: it keeps the backups of the interrupted transaction (so a rollback
// still restores what was there before it), restarts containerd when a restart is owed and was not
// done, and otherwise only verifies. The first installation of a handler also keeps the configuration
// as it was before wasmkube touched it, so Uninstall can restore it byte for byte.
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
