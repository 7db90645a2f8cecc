package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/wasmkube/wasmkube/internal/rollout"
	"github.com/wasmkube/wasmkube/pkg/platform"
)

// TestNodePlatforms checks that the manager's verdict on a node (rollout.Supports on nodePlatforms and
// the cached node's platform) is the installer's (platform.Match for the node's platform), for the
// architecture aliases and arm variants where comparing OS and arch as written would disagree.
func TestNodePlatforms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		available string // space-separated os/arch[/variant] of the index entries
		os, arch  string // the node's status.nodeInfo
		want      bool
	}{
		{"exact", "linux/amd64 linux/arm64", "linux", "arm64", true},
		{"missing", "linux/amd64", "linux", "arm64", false},
		{"other os", "windows/amd64", "linux", "amd64", false},
		{"x86_64 entry", "linux/x86_64", "linux", "amd64", true},
		{"aarch64 entry", "linux/aarch64", "linux", "arm64", true},
		{"aarch64 v8 entry", "linux/aarch64/v8", "linux", "arm64", true},
		{"arm64 v8 entry", "linux/arm64/v8", "linux", "arm64", true},
		{"upper case entry", "Linux/AMD64", "linux", "amd64", true},
		{"x86_64 node", "linux/amd64", "linux", "x86_64", true},
		{"aarch64 node", "linux/arm64", "linux", "aarch64", true},
		{"arm node takes v7", "linux/arm/v7", "linux", "arm", true},
		{"arm node takes v6", "linux/arm/v6", "linux", "arm", true},
		{"arm node takes armhf", "linux/armhf", "linux", "arm", true},
		{"arm node refuses v8 only", "linux/arm/v8", "linux", "arm", false},
		{"armhf node", "linux/arm/v7", "linux", "armhf", true},
		{"arm64 node refuses arm", "linux/arm/v7", "linux", "arm64", false},
		{"arm node refuses arm64", "linux/arm64", "linux", "arm", false},
		{"amd64 v3 only refuses a plain amd64 node", "linux/amd64/v3", "linux", "amd64", false},
		{"amd64 node takes plain beside v3", "linux/amd64/v3 linux/amd64", "linux", "amd64", true},
		{"amd64 node refuses 386", "linux/386", "linux", "amd64", false},
	}
	for _, tc := range tests {
		var available []platform.Platform
		for _, s := range strings.Fields(tc.available) {
			p, err := platform.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			available = append(available, p)
		}
		cached, _ := slimNode(&corev1.Node{Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{OperatingSystem: tc.os, Architecture: tc.arch}}})
		n := cached.(*cachedNode)
		manager := rollout.Supports(nodePlatforms(available), rollout.Platform{OS: n.OS, Arch: n.Arch})
		installer := platform.Match(available, platform.ForNode(tc.os, tc.arch)) >= 0
		if manager != tc.want || installer != tc.want {
			t.Errorf("%s: node %s/%s, entries %s: manager says %t, installer says %t, want %t (manager's platforms %v)",
				tc.name, tc.os, tc.arch, tc.available, manager, installer, tc.want, nodePlatforms(available))
		}
	}
}

// TestNodePlatformNotReported checks that a node whose kubelet has not reported its platform yet
// keeps an empty architecture (the planner waits for it) rather than a guessed one.
func TestNodePlatformNotReported(t *testing.T) {
	t.Parallel()
	if got := nodePlatform("", ""); got != (rollout.Platform{}) {
		t.Errorf("nodePlatform(\"\", \"\") = %+v, want empty", got)
	}
}
