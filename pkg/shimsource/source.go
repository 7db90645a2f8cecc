package shimsource

import (
	"context"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

// Source fetches a shim binary for a platform into a destination directory.
type Source interface {
	// Fetch writes the binary for p into destDir (which must exist) and describes it. On error
	// nothing is left in destDir.
	Fetch(ctx context.Context, p platform.Platform, destDir string) (Artifact, error)
	// Stage does what Fetch does up to the durable tail: it returns once the binary is complete in
	// a hidden temporary file of destDir and everything the source can verify is verified, so a bad
	// source fails here. The returned Staged's Finish syncs and renames it.
	Stage(ctx context.Context, p platform.Platform, destDir string) (*Staged, error)
}

// Artifact is a fetched shim binary on local disk.
type Artifact struct {
	// File is the path of the fetched binary in the caller's destination directory, mode 0755.
	File string
	// SHA256 is the hex sha256 of the binary.
	SHA256 string
	// Digest identifies what was fetched: the OCI manifest digest for the chosen platform
	// ("sha256:..."), or "sha256:<hex>" of the HTTP download or builtin binary.
	Digest string
	// ImageDigest is, for OCI, the digest the image reference resolved to (the index for a
	// multi-platform image): the value to pin. Empty for other sources.
	ImageDigest string
	// Platform is the platform of the artifact, which may be a compatible lower variant of the
	// requested one (arm/v6 for an arm/v7 node).
	Platform platform.Platform
	// Source is a human description: image reference and path, URL, or builtin name.
	Source string
}

var (
	_ Source = OCI{}
	_ Source = HTTP{}
	_ Source = Builtin{}
)
