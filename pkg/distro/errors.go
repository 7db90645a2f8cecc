package distro

import "errors"

// Sentinel errors; callers branch with errors.Is. The wrapping error says what was looked at.
var (
	// ErrUnknown means no supported distribution was found on the host; the error lists the markers
	// that were looked for. Overrides (a config path) let the installer work on such a host anyway.
	ErrUnknown = errors.New("unknown Kubernetes distribution")
	// ErrNotContainerd means the node's container runtime is not a CRI-enabled containerd (CRI-O,
	// Docker, or a containerd with its CRI plugin disabled).
	ErrNotContainerd = errors.New("container runtime is not containerd")
	// ErrAmbiguous means the host alone does not tell which configuration the distribution reads;
	// the error names the hint that resolves it.
	ErrAmbiguous = errors.New("ambiguous containerd configuration")
)
