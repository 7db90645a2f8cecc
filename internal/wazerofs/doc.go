// Package wazerofs is the filesystem a wazero guest sees for one mount (the container's rootfs or a
// volume): a wazero experimental sys.FS whose every path resolution happens in the kernel, relative
// to a directory descriptor of the mount's host directory, with openat2(2) RESOLVE_IN_ROOT.
//
// RESOLVE_IN_ROOT treats that directory as "/" for the whole lookup: ".." at the top stays there, and
// absolute or relative symbolic links (shipped in the image or created by the guest) resolve inside
// it, as they would in a container whose root it is. RESOLVE_NO_MAGICLINKS refuses procfs magic links
// (/proc/self/root and the like) should a volume hold a procfs. Operations on a name (mkdir, unlink,
// rename, link, symlink, readlink, lstat) resolve the parent directory that way and act on the final
// name relative to the parent's descriptor, never on a host path string; a final "." or ".." is
// resolved as a directory first, so no lookup leaves the mount. The package never joins, cleans or
// checks path strings for confinement: the kernel does.
//
// On top of that:
//   - a read-only FS (a readOnly volume, readOnlyRootFilesystem) refuses every write, create,
//     rename, delete and time change with EROFS, before the kernel is asked;
//   - device nodes are refused with EACCES, as on a nodev mount: an image can ship any device node,
//     and the shim runs as root without a device cgroup;
//   - with Creds, operations run with the container user's filesystem credentials (setfsuid,
//     setfsgid and setgroups on the calling thread, which is locked for the call), so the kernel checks
//     permissions and gives new files the owner and group a runc container would give them (the
//     group of a setgid directory, as fsGroup volumes have, included);
//   - new files get mode 0666 and directories 0777, less the container's umask (WASI preview1
//     carries no mode).
package wazerofs
