package installer

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmkube/wasmkube/internal/goldenfile"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/dryrun")

// `detect` and `install --dry-run` through the real binary on every host-root fixture
// of pkg/distro (k3s/rke2 templates, k0s and AL2023 drop-ins included). The output (plan and config
// diff, or the one-line error) is compared with testdata/dryrun/<fixture>.txt; refresh with -update.
// A dry run must leave the fixture unchanged.
func TestDetectAndDryRunOnDistroFixtures(t *testing.T) {
	hosts, err := filepath.Abs("../../pkg/distro/testdata/hosts")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		root := filepath.Join(hosts, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			t.Parallel()
			before := snapshot(t, root)
			var out bytes.Buffer
			for _, args := range [][]string{
				{"detect", "--host-root=" + root},
				{"install", "--dry-run", "--host-root=" + root, "--result-file=", "--shim-name=spin", "--runtime-type=io.containerd.spin.v2", "--option=SystemdCgroup=true"},
			} {
				stdout, stderr, err := execInstaller(t, args...)
				out.WriteString("$ node-installer " + args[0] + "\n")
				if err != nil {
					out.WriteString("error: " + stderr)
				} else {
					out.WriteString(stdout)
				}
			}
			golden(t, e.Name(), []byte(strings.ReplaceAll(out.String(), root, "HOSTROOT")))
			if after := snapshot(t, root); after != before {
				t.Error("dry run changed the fixture")
			}
		})
	}
}

func execInstaller(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := newCmd(args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// snapshot lists every file under root with its content.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + "\n")
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Assert(t, filepath.Join("testdata", "dryrun", name+".txt"), got, *update)
}
