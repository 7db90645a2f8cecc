package containerdcfg

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of them, with detail that names the
// line, key or version involved; callers branch with errors.Is.
var (
	// ErrParse means the document is not valid TOML (after masking template lines).
	ErrParse = errors.New("containerd config is not valid TOML")
	// ErrUnknownVersion means the document declares a config version this package does not know, or none
	// can be determined (a template without a version and no PatchOptions.DefaultVersion).
	ErrUnknownVersion = errors.New("unknown containerd config version")
	// ErrConflict means a runtime of the same name exists that wasmkube did not write.
	ErrConflict = errors.New("runtime already defined outside wasmkube's managed block")
	// ErrUnsafeEdit means the document cannot be edited without producing invalid TOML or changing the
	// meaning of what is already there (an inline table or array of tables in the way, a damaged managed
	// block, ...). The input is never modified.
	ErrUnsafeEdit = errors.New("cannot edit containerd config safely")
	// ErrContainerdVersion means that the edit depends on which containerd generation reads the document
	// and PatchOptions.ContainerdMajor does not say (or names one this package does not know).
	ErrContainerdVersion = errors.New("the edit depends on the containerd version that reads the config")
	// ErrInvalidRuntime means a Runtime, Option or handler name is not acceptable.
	ErrInvalidRuntime = errors.New("invalid runtime")
)

// errOutputCheck marks a patched document that failed its own re-parse check. It always comes wrapped
// together with ErrUnsafeEdit; seeing it means a bug in this package, which the fuzz test looks for.
var errOutputCheck = errors.New("patched output failed its check")
