package chart

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	t.Parallel()
	for name, files := range map[string][]string{
		"default":  nil,
		"custom":   {"custom.yaml"},
		"examples": {"examples.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir(t), "--namespace", releaseNamespace}, valuesArgs(files, nil)...)
			if r := runHelm(t, args...); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
}

// goldenCases are the renderings kept under testdata/golden.
var goldenCases = map[string]struct {
	files []string
	sets  []string
}{
	"default":  {},
	"custom":   {files: []string{"custom.yaml"}},
	"examples": {files: []string{"examples.yaml"}},
	"minimal": {sets: []string{
		"shims.wazero.enabled=false", "serviceAccount.create=false", "serviceAccount.name=existing",
		"installer.namespace.create=false", "installer.namespace.name=ops", "manager.metrics.service=false",
	}},
}

func TestTemplateGolden(t *testing.T) {
	t.Parallel()
	for name, tc := range goldenCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := template(t, tc.files, tc.sets...)
			if r.err != nil {
				t.Fatal(r.err)
			}
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run `go test ./test/chart -run TestTemplateGolden -update` to create it)", err)
			}
			if got := r.stdout; got != string(want) {
				t.Errorf("helm template differs from %s at %s\n(run `go test ./test/chart -run TestTemplateGolden -update` and review the diff)",
					path, firstDifference(got, string(want)))
			}
		})
	}
}

// firstDifference describes the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  got:  " + gl + "\n  want: " + wl
		}
	}
	return "(no line differs)"
}

// TestBadValuesRefused renders values a user could get wrong; each must fail with a message that names
// the offending key.
func TestBadValuesRefused(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		values string // YAML values file content
		sets   []string
		want   []string // substrings of helm's error output
	}{
		"typo at top level":     {values: "imagePullSecret: []\n", want: []string{"additional properties 'imagePullSecret' not allowed"}},
		"typo in manager":       {sets: []string{"manager.replica=2"}, want: []string{"at '/manager'", "additional properties 'replica' not allowed"}},
		"typo in installer":     {sets: []string{"installer.ttlSeconds=5"}, want: []string{"at '/installer'", "'ttlSeconds' not allowed"}},
		"typo in a shim spec":   {sets: []string{"shims.wazero.spec.runtimetype=io.containerd.wazero.v1"}, want: []string{"at '/shims/wazero/spec'", "'runtimetype' not allowed"}},
		"typo in a shim":        {sets: []string{"shims.wazero.enable=true"}, want: []string{"at '/shims/wazero'", "'enable' not allowed"}},
		"pull policy":           {sets: []string{"image.pullPolicy=Sometimes"}, want: []string{"at '/image/pullPolicy'", "Always", "IfNotPresent", "Never"}},
		"installer pull policy": {sets: []string{"installer.image.pullPolicy=always"}, want: []string{"at '/installer/image/pullPolicy'"}},
		"digest":                {sets: []string{"image.digest=1234"}, want: []string{"at '/image/digest'"}},
		"restart method":        {sets: []string{"installer.overrides.restart=reboot"}, want: []string{"at '/installer/overrides/restart'", "systemd", "signal", "none"}},
		"relative config path":  {sets: []string{"installer.overrides.containerdConfig=etc/containerd/config.toml"}, want: []string{"at '/installer/overrides/containerdConfig'"}},
		"installer toleration":  {sets: []string{"installer.tolerations[0].operator=Maybe"}, want: []string{"at '/installer/tolerations/0/operator'"}},
		"installer priority":    {sets: []string{"installer.priorityClassName=Not_Valid"}, want: []string{"at '/installer/priorityClassName'"}},
		"override without selector": {values: "installer:\n  nodeOverrides:\n    - {restart: none}\n",
			want: []string{"at '/installer/nodeOverrides/0'", "nodeSelector"}},
		"override with an empty selector": {values: "installer:\n  nodeOverrides:\n    - {nodeSelector: {}, restart: none}\n",
			want: []string{"at '/installer/nodeOverrides/0/nodeSelector'", "minProperties"}},
		"override that changes nothing": {values: "installer:\n  nodeOverrides:\n    - {nodeSelector: {a: b}, restart: none}\n    - {nodeSelector: {a: c}}\n",
			want: []string{"at '/installer/nodeOverrides/1'"}},
		"override typo": {values: "installer:\n  nodeOverrides:\n    - {nodeSelector: {a: b}, criSock: /run/c.sock}\n",
			want: []string{"at '/installer/nodeOverrides/0'", "additional properties 'criSock' not allowed"}},
		"override restart": {values: "installer:\n  nodeOverrides:\n    - {nodeSelector: {a: b}, restart: reboot}\n",
			want: []string{"at '/installer/nodeOverrides/0/restart'", "systemd", "signal", "none"}},
		"override relative path": {values: "installer:\n  nodeOverrides:\n    - {nodeSelector: {a: b}, criSocket: run/c.sock}\n",
			want: []string{"at '/installer/nodeOverrides/0/criSocket'"}},
		"installer namespace":    {sets: []string{"installer.namespace.name=Bad_NS"}, want: []string{"at '/installer/namespace/name'"}},
		"negative backoff":       {sets: []string{"installer.backoffLimit=-1"}, want: []string{"at '/installer/backoffLimit'"}},
		"zero deadline":          {sets: []string{"installer.activeDeadlineSeconds=0"}, want: []string{"at '/installer/activeDeadlineSeconds'"}},
		"handler deadline":       {sets: []string{"manager.handlerDeadline=2 minutes"}, want: []string{"at '/manager/handlerDeadline'"}},
		"metrics port":           {sets: []string{"manager.metrics.port=70000"}, want: []string{"at '/manager/metrics/port'"}},
		"log format":             {sets: []string{"manager.logFormat=yaml"}, want: []string{"at '/manager/logFormat'", "json", "text"}},
		"enabled as a string":    {sets: []string{"shims.wazero.enabled=yes"}, want: []string{"at '/shims/wazero/enabled'", "want boolean"}},
		"autoEnable as a string": {sets: []string{"autoEnable=all"}, want: []string{"at '/autoEnable'", "want boolean"}},
		"shim name":              {values: "shims:\n  Spin:\n    enabled: false\n    spec: {runtimeType: io.containerd.spin.v2, source: {builtin: wazero}}\n", want: []string{"at '/shims'", "additional properties 'Spin' not allowed"}},
		"shim name too long": {values: "shims:\n  " + strings.Repeat("a", 59) + ":\n    enabled: false\n    spec: {runtimeType: io.containerd.a.v1, source: {builtin: wazero}}\n",
			want: []string{"at '/shims'", "additional properties '" + strings.Repeat("a", 59) + "' not allowed"}},
		"runtime type": {sets: []string{"shims.wazero.spec.runtimeType=wazero"}, want: []string{"at '/shims/wazero/spec/runtimeType'"}},
		"two sources": {
			values: "shims:\n  wazero:\n    spec:\n      source:\n        oci: {image: r/x:1, path: /x}\n",
			want:   []string{"at '/shims/wazero/spec/source'", "maxProperties"},
		},
		"unknown builtin":  {sets: []string{"shims.wazero.spec.source.builtin=wasmer"}, want: []string{"at '/shims/wazero/spec/source/builtin'", "wazero"}},
		"oci path":         {sets: []string{"shims.spin.spec.source.oci.path=containerd-shim-spin-v2"}, want: []string{"at '/shims/spin/spec/source/oci/path'"}},
		"plain http url":   {sets: []string{"shims.wasmtime.spec.source.http.platforms[0].url=http://example.com/shim"}, want: []string{"at '/shims/wasmtime/spec/source/http/platforms/0/url'"}},
		"short sha256":     {sets: []string{"shims.wasmtime.spec.source.http.platforms[1].sha256=abc"}, want: []string{"at '/shims/wasmtime/spec/source/http/platforms/1/sha256'"}},
		"max unavailable":  {sets: []string{"shims.wazero.spec.rollout.maxUnavailable=150%"}, want: []string{"at '/shims/wazero/spec/rollout/maxUnavailable'"}},
		"zero unavailable": {sets: []string{"shims.wazero.spec.rollout.maxUnavailable=0"}, want: []string{"at '/shims/wazero/spec/rollout/maxUnavailable'"}},
		"option name":      {values: "shims:\n  wazero:\n    spec:\n      options: {bad-key: true}\n", want: []string{"at '/shims/wazero/spec/options'", "additional properties 'bad-key' not allowed"}},
		"option value":     {values: "shims:\n  wazero:\n    spec:\n      options: {Table: {a: 1}}\n", want: []string{"at '/shims/wazero/spec/options/Table'"}},

		// Checks the schema cannot express fail in the templates, with the key to fix.
		"installer namespace is the release namespace": {sets: []string{"installer.namespace.name=" + releaseNamespace},
			want: []string{`installer.namespace.name "wasmkube-system" is the release namespace`}},
		"replicas without leader election": {sets: []string{"manager.replicas=2", "manager.leaderElection=false"},
			want: []string{"manager.replicas > 1 needs manager.leaderElection=true"}},
		"spin enabled without an image": {sets: []string{"shims.spin.enabled=true"},
			want: []string{"shims.spin.spec.source.oci.image is empty"}},
		"wasmtime enabled without downloads": {sets: []string{"shims.wasmtime.enabled=true"},
			want: []string{"shims.wasmtime.spec.source.http.platforms[0] (linux/amd64): url and sha256 must both be set"}},
		"existing service account without a name": {sets: []string{"serviceAccount.create=false"},
			want: []string{"serviceAccount.name must name an existing ServiceAccount"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"template", releaseName, chartDir(t), "--namespace", releaseNamespace}
			if tc.values != "" {
				f := filepath.Join(t.TempDir(), "values.yaml")
				if err := os.WriteFile(f, []byte(tc.values), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--values", f)
			}
			args = append(args, valuesArgs(nil, tc.sets)...)
			r := runHelm(t, args...)
			if r.err == nil {
				t.Fatalf("helm template accepted the values; want an error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("helm's error lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}
