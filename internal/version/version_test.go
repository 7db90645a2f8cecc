package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d"}, {Key: "vcs.modified", Value: "true"}}}
	release := &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}
	tail := ", " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	tests := []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"stamped wins", "v0.1.0", release, "v0.1.0 (" + strings.TrimPrefix(tail, ", ")},
		{"module version", "", release, "v0.2.0 (" + strings.TrimPrefix(tail, ", ")},
		{"vcs build", "", vcs, "devel (commit 1a2b3c4d5e6f-dirty" + tail},
		{"no build info", "", nil, "devel (" + strings.TrimPrefix(tail, ", ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := fromBuildInfo(tt.stamped, func() (*debug.BuildInfo, bool) { return tt.info, tt.info != nil }).String()
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
