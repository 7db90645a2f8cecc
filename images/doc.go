// Package images defines wasmkube's container images and builds them without Docker: it cross-compiles
// static Go binaries, assembles one reproducible single-layer image per platform with
// go-containerregistry, joins them in a multi-arch OCI index, and writes or pushes the result.
//
// The same sources, Go toolchain and SOURCE_DATE_EPOCH give the same digests: binaries are built with
// -trimpath, no VCS stamp and no build ID; tar entries are sorted, owned by fixed IDs and stamped with
// the epoch; the config and history carry the epoch as their only time. Command images/build is the
// front end (`make images`, `make push`).
package images
