// The result of one node-installer run: one JSON document, printed on stdout and written to the pod's
// termination-message file, which the manager reads to learn what happened on a node. Kubelet truncates
// termination messages at 4096 bytes, so Encode keeps the document within MaxBytes by shortening the
// free-text fields first.

package v1alpha1

import (
	"encoding/json"
	"fmt"
	"time"
)

// MaxBytes is the largest document Encode produces (kubelet's termination-message limit).
const MaxBytes = 4096

// Operations.
const (
	OpInstall   = "install"
	OpUninstall = "uninstall"
	OpVerify    = "verify"
)

// Reasons are machine-readable CamelCase causes of a failure (Result.Reason).
const (
	ReasonInvalidArguments         = "InvalidArguments"
	ReasonDetectFailed             = "DetectFailed"
	ReasonUnsupportedPlatform      = "UnsupportedPlatform"
	ReasonUnsupportedHost          = "UnsupportedHost"
	ReasonFetchFailed              = "FetchFailed"
	ReasonBinaryFailed             = "BinaryFailed"
	ReasonConfigUnparseable        = "ConfigUnparseable"
	ReasonConfigUnknownVersion     = "ConfigUnknownVersion"
	ReasonConfigConflict           = "ConfigConflict"
	ReasonConfigUnsafe             = "ConfigUnsafeEdit"
	ReasonContainerdVersionUnknown = "ContainerdVersionUnknown"
	ReasonConfigWriteFailed        = "ConfigWriteFailed"
	ReasonStateFailed              = "StateFailed"
	ReasonRestartFailed            = "RestartFailed"
	ReasonVerifyFailed             = "VerifyFailed"
	ReasonShimNotRunnable          = "ShimNotRunnable"
	ReasonRollbackFailed           = "RollbackFailed"
	ReasonNodeBusy                 = "NodeBusy"        // another operation held the node lock until the deadline
	ReasonHandlerConflict          = "HandlerConflict" // the handler or its binary belongs to another Shim here
	ReasonTimeout                  = "Timeout"
	ReasonInternal                 = "Internal"
)

// IsUnsupported reports whether a failure reason means that the node cannot take the shim at all (no
// binary for its platform, a host whose containerd configuration cannot be edited): nothing was
// changed, retrying cannot help, and the manager marks the node unsupported rather than failed.
func IsUnsupported(reason string) bool {
	return reason == ReasonUnsupportedPlatform || reason == ReasonUnsupportedHost
}

// Exit codes of the node-installer. The manager's installer Jobs retry ExitTransient (and any other
// code) up to their backoffLimit, and fail at once on ExitUsage and ExitPermanent (podFailurePolicy).
const (
	ExitOK = 0
	// ExitTransient: the run failed in a way a retry may fix (a download, a restart, a timeout).
	ExitTransient = 1
	// ExitUsage: the command line is wrong (unknown command or flag, a missing or bad argument).
	ExitUsage = 2
	// ExitPermanent: retrying on this node cannot help (a config wasmkube must not edit, a host or
	// platform it cannot serve (IsUnsupported), a handler another Shim owns, a shim binary that does
	// not run here).
	ExitPermanent = 3
)

// permanent lists the reasons a retry cannot fix.
var permanent = map[string]bool{
	ReasonDetectFailed:             true,
	ReasonUnsupportedPlatform:      true,
	ReasonUnsupportedHost:          true,
	ReasonConfigUnparseable:        true,
	ReasonConfigUnknownVersion:     true,
	ReasonConfigConflict:           true,
	ReasonConfigUnsafe:             true,
	ReasonContainerdVersionUnknown: true,
	ReasonShimNotRunnable:          true,
	ReasonHandlerConflict:          true,
}

// ExitCode is the node-installer's exit code for a result: ExitOK on success, ExitUsage for invalid
// arguments, ExitPermanent for a reason a retry cannot fix, else ExitTransient.
func (r Result) ExitCode() int {
	switch {
	case r.Success:
		return ExitOK
	case r.Reason == ReasonInvalidArguments:
		return ExitUsage
	case permanent[r.Reason]:
		return ExitPermanent
	}
	return ExitTransient
}

// Step is one timed phase of a run.
type Step struct {
	Name string `json:"name"`
	MS   int64  `json:"ms"`
}

// Result is the outcome of one install, uninstall or verify run. ShimVersion is what the shim binary
// printed for -v (one line) when the run probed it.
type Result struct {
	Operation     string `json:"operation"`
	Shim          string `json:"shim"`
	Handler       string `json:"handler"`
	Success       bool   `json:"success"`
	Changed       bool   `json:"changed"`
	ConfigChanged bool   `json:"configChanged"`
	BinaryChanged bool   `json:"binaryChanged"`
	Restarted     bool   `json:"restarted"`
	RolledBack    bool   `json:"rolledBack,omitempty"`
	SpecHash      string `json:"specHash,omitempty"`
	Platform      string `json:"platform,omitempty"`
	Distro        string `json:"distro,omitempty"`
	ConfigPath    string `json:"configPath,omitempty"`
	ConfigVersion int    `json:"configVersion,omitempty"`
	BinaryPath    string `json:"binaryPath,omitempty"`
	BinarySHA256  string `json:"binarySHA256,omitempty"`
	SourceDigest  string `json:"sourceDigest,omitempty"`
	ShimVersion   string `json:"shimVersion,omitempty"`
	Steps         []Step `json:"steps,omitempty"`
	DurationMS    int64  `json:"durationMs"`
	Reason        string `json:"reason,omitempty"`
	Error         string `json:"error,omitempty"`
}

// AddStep records a finished step that took d.
func (r *Result) AddStep(name string, d time.Duration) {
	r.Steps = append(r.Steps, Step{Name: name, MS: d.Milliseconds()})
}

// Fail marks the result failed with a reason and the error's text.
func (r *Result) Fail(reason string, err error) {
	r.Success = false
	r.Reason = reason
	if err != nil {
		r.Error = err.Error()
	}
}

// Encode returns the result as one line of compact JSON of at most MaxBytes bytes. When the full
// document is too long it shortens Error (keeping at least its first 512 bytes), then drops Steps,
// then shortens every free-text field to 200 bytes.
func (r Result) Encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	if len(b) <= MaxBytes {
		return b, nil
	}
	over := len(b) - MaxBytes
	r.Error = shorten(r.Error, max(len(r.Error)-over-16, 512))
	if b, err = json.Marshal(r); err == nil && len(b) <= MaxBytes {
		return b, nil
	}
	r.Steps = nil
	if b, err = json.Marshal(r); err == nil && len(b) <= MaxBytes {
		return b, nil
	}
	for _, s := range []*string{&r.Error, &r.ConfigPath, &r.BinaryPath, &r.SourceDigest, &r.ShimVersion, &r.Distro, &r.Shim, &r.Handler, &r.SpecHash} {
		*s = shorten(*s, 200)
	}
	b, err = json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("encode result: %d bytes even after truncation", len(b))
	}
	return b, nil
}

// shorten cuts s to at most n bytes (never below 0) and marks the cut, keeping the start of the text,
// which carries the most specific context.
func shorten(s string, n int) string {
	const mark = "…"
	if len(s) <= n {
		return s
	}
	if n <= len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// utf8Start reports whether b begins a UTF-8 sequence (so a cut before it keeps the string valid).
func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Decode parses a document produced by Encode.
func Decode(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, fmt.Errorf("decode installer result: %w", err)
	}
	return r, nil
}
