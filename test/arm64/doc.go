// Package arm64 runs linux/arm64 builds of wasmkube's node binaries on this amd64 machine under Debian's
// qemu-user-static (qemu-aarch64-static BINARY ARGS), built as the node-installer image builds them
// (images.Compiler):
//
//   - the node-installer's `detect` and `containerd-config add` give the same stdout, stderr and exit code
//     as the amd64 build on distro fixtures and vendor configs;
//   - the wazero shim binary answers -info and -v as the amd64 build does, and Wasm modules run through
//     the shim's run path (internal/wazerorun, via testdata/runwasm): wazero's arm64 compiler generates
//     the code and qemu executes it.
//
// What qemu-user 7.2 (Debian 12) cannot run, and is therefore not tested here: the shim's ttrpc server
// (it sets itself as a child subreaper, a prctl qemu 7.2 refuses, and `start` re-executes the binary,
// which qemu-user follows only with a host-wide binfmt_misc registration that these tests do not make),
// hence the shim under a real containerd; and guests with mounts (wazerofs needs openat2, which qemu 7.2
// does not implement, and refuses to run without it).
package arm64
