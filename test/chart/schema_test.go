package chart

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestValuesSchemaFollowsCRD checks that values.schema.json describes a Shim spec (shims.NAME.spec)
// with the same fields as the Shim CRD, at every depth: a field the API gains or loses must reach the
// chart's schema too, or a chart user can neither set it nor be told it is gone. The chart's schema
// stays hand-written where it differs on purpose (empty placeholders for the disabled examples, typed
// runtime options); only the field names must agree.
func TestValuesSchemaFollowsCRD(t *testing.T) {
	t.Parallel()
	var values map[string]any
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &values); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	var crd map[string]any
	if data, err = os.ReadFile(filepath.Join(chartDir(t), "crds", "wasmkube.io_shims.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("Shim CRD: %v", err)
	}
	shim := dig(t, values, "properties", "shims", "patternProperties")
	if len(shim) != 1 {
		t.Fatalf("values.schema.json: shims has %d name patterns, want 1", len(shim))
	}
	var chartSpec map[string]any
	for _, s := range shim {
		chartSpec = dig(t, s.(map[string]any), "properties", "spec")
	}
	version := dig(t, crd, "spec")["versions"].([]any)[0].(map[string]any)
	crdSpec := dig(t, version, "schema", "openAPIV3Schema", "properties", "spec")
	for _, d := range fieldDiffs("spec", chartSpec, crdSpec) {
		t.Error(d)
	}
}

// fieldDiffs lists, by path, the fields one schema declares and the other does not, descending into
// object properties and array items.
func fieldDiffs(path string, chart, crd map[string]any) []string {
	var out []string
	if ci, ok := crd["items"].(map[string]any); ok {
		if hi, ok := chart["items"].(map[string]any); ok {
			out = append(out, fieldDiffs(path+"[]", hi, ci)...)
		}
	}
	chartProps, _ := chart["properties"].(map[string]any)
	crdProps, _ := crd["properties"].(map[string]any)
	names := map[string]bool{}
	for n := range chartProps {
		names[n] = true
	}
	for n := range crdProps {
		names[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		h, inChart := chartProps[n].(map[string]any)
		c, inCRD := crdProps[n].(map[string]any)
		switch {
		case !inChart:
			out = append(out, path+"."+n+": in the Shim CRD, missing from charts/wasmkube/values.schema.json")
		case !inCRD:
			out = append(out, path+"."+n+": in charts/wasmkube/values.schema.json, not in the Shim CRD")
		default:
			out = append(out, fieldDiffs(path+"."+n, h, c)...)
		}
	}
	return out
}

// dig walks nested objects by key and fails the test at the first missing one.
func dig(t *testing.T, m map[string]any, keys ...string) map[string]any {
	t.Helper()
	for i, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			t.Fatalf("no object at %s", strings.Join(keys[:i+1], "."))
		}
		m = next
	}
	return m
}
