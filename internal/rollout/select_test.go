package rollout

import (
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

func TestSelected(t *testing.T) {
	t.Parallel()
	on := map[string]string{v1alpha1.EnabledAnnotation: "true"}
	off := map[string]string{v1alpha1.EnabledAnnotation: "false"}
	pool := map[string]string{"pool": "wasm"}
	for name, tc := range map[string]struct {
		selector, labels, annotations map[string]string
		want                          bool
	}{
		"null selects annotated":          {nil, nil, on, true},
		"null skips unannotated":          {nil, pool, nil, false},
		"null skips other annotation":     {nil, nil, map[string]string{v1alpha1.EnabledAnnotation: "yes"}, false},
		"empty selects all":               {map[string]string{}, nil, nil, true},
		"empty respects opt-out":          {map[string]string{}, nil, off, false},
		"labels select pool":              {pool, map[string]string{"pool": "wasm", "x": "y"}, nil, true},
		"labels need every label":         {map[string]string{"pool": "wasm", "zone": "a"}, pool, nil, false},
		"labels need equal value":         {pool, map[string]string{"pool": "gpu"}, nil, false},
		"labels respect opt-out":          {pool, pool, off, false},
		"labels ignore opt-in annotation": {pool, nil, on, false},
		"null with opt-out is not picked": {nil, nil, off, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := Selected(tc.selector, tc.labels, tc.annotations); got != tc.want {
				t.Fatalf("Selected(%v, %v, %v) = %v, want %v", tc.selector, tc.labels, tc.annotations, got, tc.want)
			}
		})
	}
}

func TestHTTPPlatforms(t *testing.T) {
	t.Parallel()
	got := HTTPPlatforms(&v1alpha1.HTTPSource{Platforms: []v1alpha1.HTTPArtifact{{Arch: "arm64"}, {OS: "linux", Arch: "amd64"}}})
	if !Supports(got, Platform{"linux", "arm64"}) || !Supports(got, Platform{"linux", "amd64"}) || Supports(got, Platform{"windows", "amd64"}) {
		t.Fatalf("HTTPPlatforms = %v", got)
	}
}

func shim(mut func(*v1alpha1.Shim)) *v1alpha1.Shim {
	s := &v1alpha1.Shim{
		ObjectMeta: metav1.ObjectMeta{Name: "spin"},
		Spec: v1alpha1.ShimSpec{
			RuntimeType: "io.containerd.spin.v2",
			Source:      v1alpha1.ShimSource{Builtin: "wazero"},
			Options:     map[string]apiextensionsv1.JSON{"A": {Raw: []byte("true")}, "B": {Raw: []byte(`"x"`)}},
		},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func TestSpecHash(t *testing.T) {
	t.Parallel()
	base := SpecHash(shim(nil))
	if len(base) != 16 {
		t.Fatalf("hash %q: want 16 hex characters", base)
	}
	same := map[string]func(*v1alpha1.Shim){
		"node selector":    func(s *v1alpha1.Shim) { s.Spec.NodeSelector = map[string]string{"a": "b"} },
		"rollout":          func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromString("50%")) },
		"runtime class":    func(s *v1alpha1.Shim) { s.Spec.RuntimeClass.Name = "other" },
		"explicit handler": func(s *v1alpha1.Shim) { s.Spec.Handler = "spin" },
		"status":           func(s *v1alpha1.Shim) { s.Status.SpecHash = "x" },
	}
	for name, mut := range same {
		if got := SpecHash(shim(mut)); got != base {
			t.Errorf("%s changed the hash: %s != %s", name, got, base)
		}
	}
	differ := map[string]func(*v1alpha1.Shim){
		"runtime type": func(s *v1alpha1.Shim) { s.Spec.RuntimeType = "io.containerd.spin.v3" },
		"handler":      func(s *v1alpha1.Shim) { s.Spec.Handler = "spin2" },
		"source": func(s *v1alpha1.Shim) {
			s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: "r/i:1", Path: "/s"}}
		},
		"option value": func(s *v1alpha1.Shim) { s.Spec.Options["A"] = apiextensionsv1.JSON{Raw: []byte("false")} },
		"option type":  func(s *v1alpha1.Shim) { s.Spec.Options["A"] = apiextensionsv1.JSON{Raw: []byte(`"true"`)} },
		"no options":   func(s *v1alpha1.Shim) { s.Spec.Options = nil },
	}
	for name, mut := range differ {
		if got := SpecHash(shim(mut)); got == base {
			t.Errorf("%s did not change the hash", name)
		}
	}
}

func TestJobName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 250) + ".example.com"
	for name, tc := range map[string]struct {
		shim, node string
		op         Operation
		prefix     string
	}{
		"short":      {"spin", "node-1", Install, "spin-install-node-1-"},
		"dots":       {"spin", "ip-10-0-0-1.ec2.internal", Uninstall, "spin-uninstall-ip-10-0-0-1-ec2-internal-"},
		"upper case": {"spin", "Node_A", Install, "spin-install-node-a-"},
		"long node":  {"spin", long, Install, "spin-install-nnnn"},
		"long both":  {strings.Repeat("s", 58), long, Uninstall, strings.Repeat("s", 52)},
	} {
		t.Run(name, func(t *testing.T) {
			got := JobName(tc.shim, tc.node, tc.op, "0123456789abcdef")
			if len(got) > 63 || !strings.HasPrefix(got, tc.prefix) || !dnsLabel.MatchString(got) {
				t.Fatalf("JobName = %q (%d chars): want a DNS label <= 63 starting %q", got, len(got), tc.prefix)
			}
			if again := JobName(tc.shim, tc.node, tc.op, "0123456789abcdef"); again != got {
				t.Fatalf("JobName not deterministic: %q then %q", got, again)
			}
		})
	}
	// Identities that differ only beyond the cut, or by hash, get different names.
	a := JobName("spin", long+"a", Install, "h")
	b := JobName("spin", long+"b", Install, "h")
	c := JobName("spin", long+"a", Install, "h2")
	if a == b || a == c {
		t.Fatalf("collision: %q %q %q", a, b, c)
	}
}

func TestMaxUnavailable(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		v        *intstr.IntOrString
		selected int
		want     int
	}{
		"default is 10%":       {nil, 1000, 100},
		"default at least one": {nil, 9, 1},
		"int":                  {ptr.To(intstr.FromInt32(3)), 10, 3},
		"int above nodes":      {ptr.To(intstr.FromInt32(30)), 10, 30},
		"percent rounds down":  {ptr.To(intstr.FromString("15%")), 10, 1},
		"percent of 1000":      {ptr.To(intstr.FromString("10%")), 1000, 100},
		"percent at least one": {ptr.To(intstr.FromString("10%")), 3, 1},
		"no nodes":             {ptr.To(intstr.FromString("50%")), 0, 1},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := MaxUnavailable(tc.v, tc.selected)
			if err != nil || got != tc.want {
				t.Fatalf("MaxUnavailable = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	if _, err := MaxUnavailable(ptr.To(intstr.FromString("ten")), 10); err == nil {
		t.Fatal("MaxUnavailable(ten): want an error")
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
