package nodeinstaller

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmkube/wasmkube/pkg/distro"
)

// --state-file and --shim-dir move the installer's own files; the default stays the profile's.
func TestNodeStateFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stateFile, want, fails string
	}{
		{name: "default", want: distro.DefaultStateFile},
		{name: "override", stateFile: "/srv/wk//state.json", want: "/srv/wk/state.json"},
		{name: "relative", stateFile: "srv/state.json", fails: "--state-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := Node{HostRoot: filepath.Join("..", "..", "pkg", "distro", "testdata", "hosts", "nonstandard"), Restart: "signal",
				ProcRoot: "/proc", StateFile: tt.stateFile, Overrides: distro.Overrides{ConfigPath: "/srv/containerd/config.toml",
					CRISocket: "/srv/containerd/run/containerd.sock"}}
			_, in, err := n.Installer()
			if tt.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fails) {
					t.Fatalf("got %v, want an error naming %s", err, tt.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Profile.StateFile != tt.want {
				t.Errorf("state file %q, want %q", in.Profile.StateFile, tt.want)
			}
		})
	}
}
