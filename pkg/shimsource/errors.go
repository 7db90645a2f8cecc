package shimsource

import "errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrNoPlatform: the source has no artifact for the requested platform.
	ErrNoPlatform = errors.New("no artifact for this platform")
	// ErrDigestMismatch: content does not match its digest or checksum (tampered or wrong pin).
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNotFound: the image, manifest, file, member, URL or builtin does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInsecure: a plain-http download was refused because insecure access was not allowed.
	ErrInsecure = errors.New("insecure source refused")
	// ErrUnauthorized: the registry or server refused the credentials (or their absence).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTooLarge: a download or extracted file exceeds the size cap.
	ErrTooLarge = errors.New("artifact too large")
)
