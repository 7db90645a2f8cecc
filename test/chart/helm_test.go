package chart

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Release name and namespace of every rendering and install.
const (
	releaseName      = "wasmkube"
	releaseNamespace = "wasmkube-system"
)

// repoRoot is the repository root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "wasmkube") }

// helmResult is one run of the helm binary.
type helmResult struct {
	stdout, stderr string
	err            error
}

// runHelm runs helm with args and a private HOME-like config, cache and data directory so that the test
// neither reads nor writes the user's helm state.
func runHelm(t testing.TB, args ...string) helmResult {
	t.Helper()
	bin := testenv.Path(t, testenv.EnvHelm)
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return helmResult{stdout.String(), stderr.String(), err}
}

// valuesArgs turns values file names under testdata/values and --set pairs into helm arguments.
func valuesArgs(files []string, sets []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "--values", filepath.Join("testdata", "values", f))
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// template renders the chart with `helm template`.
func template(t testing.TB, files []string, sets ...string) helmResult {
	t.Helper()
	args := append([]string{"template", releaseName, chartDir(t), "--namespace", releaseNamespace}, valuesArgs(files, sets)...)
	return runHelm(t, args...)
}

// mustRender renders the chart and parses every document.
func mustRender(t testing.TB, files []string, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	r := template(t, files, sets...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	objs, err := parseObjects(r.stdout)
	if err != nil {
		t.Fatalf("parse the rendered chart: %v", err)
	}
	return objs
}

// parseObjects decodes a multi-document YAML stream, skipping empty documents.
func parseObjects(s string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(s), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// find returns the one rendered object of kind and name, failing t when it is missing.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("the chart rendered no %s %q", kind, name)
	return nil
}
