package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// Handler returns the Shim's containerd handler: spec.handler, or the Shim's name.
func Handler(s *v1alpha1.Shim) string {
	if s.Spec.Handler != "" {
		return s.Spec.Handler
	}
	return s.Name
}

// RuntimeClassName returns the name of the Shim's RuntimeClass: spec.runtimeClass.name, or the Shim's name.
func RuntimeClassName(s *v1alpha1.Shim) string {
	if s.Spec.RuntimeClass.Name != "" {
		return s.Spec.RuntimeClass.Name
	}
	return s.Name
}

// SpecHash hashes what a node's install depends on (runtime type, handler, source, options), so that a
// change of any of them, and only of them, re-installs the ready nodes. It is 16 hex characters.
func SpecHash(s *v1alpha1.Shim) string {
	// encoding/json writes map keys sorted, so equal specs give equal bytes.
	b, err := json.Marshal(struct {
		RuntimeType string                     `json:"runtimeType"`
		Handler     string                     `json:"handler"`
		Source      v1alpha1.ShimSource        `json:"source"`
		Options     map[string]json.RawMessage `json:"options,omitempty"`
	}{s.Spec.RuntimeType, Handler(s), s.Spec.Source, RawOptions(s)})
	if err != nil {
		// Every field is a plain string, bool or already-valid JSON; marshalling cannot fail.
		panic(fmt.Sprintf("hash spec of Shim %s: %v", s.Name, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// RawOptions returns the Shim's options as raw JSON values.
func RawOptions(s *v1alpha1.Shim) map[string]json.RawMessage {
	if len(s.Spec.Options) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(s.Spec.Options))
	for k, v := range s.Spec.Options {
		out[k] = json.RawMessage(v.Raw)
	}
	return out
}

// Operation is what a Job does on a node.
type Operation string

// Operations. Verify checks a ready node without changing it (see Input.VerifyInterval).
const (
	Install   Operation = "install"
	Uninstall Operation = "uninstall"
	Verify    Operation = "verify"
)

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// JobName returns the deterministic name of the Job that runs op for a Shim on a node at a spec hash:
// readable parts, cut so that the whole name stays within 63 characters, and a hash of the full
// identity so that long names that share a prefix stay distinct.
func JobName(shim, node string, op Operation, specHash string) string {
	sum := sha256.Sum256([]byte(shim + "\x00" + node + "\x00" + string(op) + "\x00" + specHash))
	suffix := hex.EncodeToString(sum[:])[:10]
	readable := notDNS.ReplaceAllString(strings.ToLower(shim+"-"+string(op)+"-"+node), "-")
	const maxReadable = 63 - 1 - 10
	if len(readable) > maxReadable {
		readable = readable[:maxReadable]
	}
	readable = strings.Trim(readable, "-")
	return readable + "-" + suffix
}
