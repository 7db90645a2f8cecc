// Package shimsource fetches containerd shim binaries onto local disk.
//
// Three sources implement [Source]:
//   - [OCI] extracts one file from an OCI or Docker image. An image index is resolved to the
//     manifest for the requested [platform.Platform]; layers are searched from the top down, honouring
//     whiteouts and symlinks; every layer read is verified against its digest, and a
//     digest-pinned reference must match what the registry serves. Credentials come from a
//     docker config.json (a mounted pull secret), never from the environment.
//   - [HTTP] downloads a raw binary or a .tar.gz holding it and checks a mandatory sha256
//     before the result becomes visible. Plain http is refused unless explicitly allowed.
//   - [Builtin] copies a binary shipped next to the caller (the installer image's own
//     directory).
//
// Every Fetch writes the binary into the caller's destination directory atomically (a hidden
// temporary file, fsync, chmod 0755, rename, fsync of the directory). On any failure nothing is
// left in the destination directory. Stage, which every source also has, stops before the sync:
// it returns a [Staged] binary that is complete and verified, and its Finish syncs and renames it
// later, so a caller can overlap that tail (tens of milliseconds for a large binary) with other work
// while a bad source still fails before anything else happened. [Platforms] and [Match] answer which platforms an OCI
// source offers and whether a node can use one of them, with the same rules Fetch applies.
package shimsource
