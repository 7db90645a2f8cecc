// Package wazeromodule finds the WebAssembly module a container runs, following runwasi's
// conventions so the same images work with runwasi's shims:
//
//   - an ordinary OCI image with a .wasm file in a layer: args[0] is the file's path in the container's
//     rootfs, optionally followed by "#" and the exported function to call ("/app.wasm#serve");
//   - a Wasm OCI artifact (platform wasip1/wasm or wasi/wasm, layers of media type
//     application/vnd.bytecodealliance.wasm.component.layer.v0+wasm): the module is the first Wasm
//     layer of the container's image, read from containerd's content store over its gRPC API.
package wazeromodule
