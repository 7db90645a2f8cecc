package rollout

import (
	"strings"
	"testing"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

func TestRequirements(t *testing.T) {
	t.Parallel()
	shim := func(constraint, builtin string) *v1alpha1.Shim {
		s := &v1alpha1.Shim{}
		s.Spec.Requirements.Containerd = constraint
		if builtin != "" {
			s.Spec.Source.Builtin = builtin
		} else {
			s.Spec.Source.HTTP = &v1alpha1.HTTPSource{}
		}
		return s
	}
	tests := []struct {
		name, constraint, builtin, runtime string
		unmet                              string // substring; "" means the node qualifies
	}{
		{name: "any containerd", runtime: "containerd://1.6.20"},
		{name: "CRI-O never", runtime: "cri-o://1.30.0", unmet: "is cri-o://1.30.0, not containerd"},
		{name: "docker never", constraint: ">=1.0", runtime: "docker://27.0.1", unmet: "not containerd"},
		{name: "no scheme", runtime: "2.0.0", unmet: "is 2.0.0, not containerd"},
		{name: "satisfied", constraint: ">=2.0", runtime: "containerd://2.4.2"},
		{name: "too old", constraint: ">=2.0", runtime: "containerd://1.7.27", unmet: "containerd 1.7.27 does not satisfy >=2.0"},
		{name: "distribution suffix ignored", constraint: ">=2.1", runtime: "containerd://2.1.5-k3s1"},
		{name: "v prefix and build metadata", constraint: ">=2.0, <3", runtime: "containerd://v2.4.2+unknown"},
		{name: "range upper bound", constraint: ">=1.7, <2", runtime: "containerd://2.0.0", unmet: "does not satisfy >=1.7, <2"},
		{name: "unreadable version", constraint: ">=2.0", runtime: "containerd://devel", unmet: `containerd version "devel" cannot be read`},
		// The kubelet's word for a runtime that does not answer (a containerd restart): not known now.
		{name: "runtime not answering", builtin: "wazero", runtime: "containerd://Unknown"},
		{name: "not reported yet", builtin: "wazero", runtime: ""},
		{name: "builtin wazero needs 2.x", builtin: "wazero", runtime: "containerd://1.7.27",
			unmet: "containerd 1.7.27 does not satisfy >=2.0 (the builtin wazero shim needs it)"},
		{name: "builtin wazero on 2.x", builtin: "wazero", runtime: "containerd://2.0.0-rc.1"},
		{name: "both apply", constraint: "<2.4", builtin: "wazero", runtime: "containerd://2.4.2", unmet: "does not satisfy <2.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseRequirements(shim(tt.constraint, tt.builtin))
			if err != nil {
				t.Fatal(err)
			}
			got := r.Unmet(tt.runtime)
			if (got == "") != (tt.unmet == "") || !strings.Contains(got, tt.unmet) {
				t.Errorf("Unmet(%q) = %q, want %q", tt.runtime, got, tt.unmet)
			}
		})
	}
	if _, err := ParseRequirements(shim(">=two", "")); err == nil || !strings.Contains(err.Error(), `spec.requirements.containerd ">=two" is not a version constraint`) {
		t.Errorf("ParseRequirements(>=two) = %v", err)
	}
}

func TestRuntimeID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ version, bootID, want string }{
		{"containerd://2.4.2", "b1", "containerd://2.4.2 boot=b1"},
		{"containerd://2.4.2", "", "containerd://2.4.2 boot="},
		{"containerd://Unknown", "b1", ""}, // the runtime does not answer the kubelet: not a change
		{"", "b1", ""},
	} {
		if got := RuntimeID(tt.version, tt.bootID); got != tt.want {
			t.Errorf("RuntimeID(%q, %q) = %q, want %q", tt.version, tt.bootID, got, tt.want)
		}
	}
}
