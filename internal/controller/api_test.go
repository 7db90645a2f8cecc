package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

const sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// options sets a Shim's options from raw JSON values.
func options(raw map[string]string) func(*v1alpha1.Shim) {
	return func(s *v1alpha1.Shim) {
		s.Spec.Options = map[string]apiextensionsv1.JSON{}
		for k, v := range raw {
			s.Spec.Options[k] = apiextensionsv1.JSON{Raw: []byte(v)}
		}
	}
}

func validShim(name string, mut ...func(*v1alpha1.Shim)) *v1alpha1.Shim {
	s := &v1alpha1.Shim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ShimSpec{
			RuntimeType: "io.containerd.wazero.v1",
			Source:      v1alpha1.ShimSource{Builtin: "wazero"},
		},
	}
	for _, m := range mut {
		m(s)
	}
	return s
}

// TestAPIValidation creates Shims on the real API server: each invalid one must be refused with the
// message of its rule, and the valid ones accepted.
func TestAPIValidation(t *testing.T) {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	httpSrc := func(p ...v1alpha1.HTTPArtifact) func(*v1alpha1.Shim) {
		return func(s *v1alpha1.Shim) { s.Spec.Source = v1alpha1.ShimSource{HTTP: &v1alpha1.HTTPSource{Platforms: p}} }
	}
	for name, tc := range map[string]struct {
		shim    *v1alpha1.Shim
		wantErr string // "" means accepted
	}{
		"valid builtin": {shim: validShim("ok-builtin")},
		"valid oci": {shim: validShim("ok-oci", func(s *v1alpha1.Shim) {
			s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: "ghcr.io/x/spin@sha256:" + sha, Path: "/containerd-shim-spin-v2"}}
		})},
		"valid http, options, percent, all nodes": {shim: validShim("ok-http",
			httpSrc(v1alpha1.HTTPArtifact{Arch: "amd64", URL: "https://example.com/s.tgz", SHA256: sha},
				v1alpha1.HTTPArtifact{Arch: "arm64", URL: "https://example.com/a.tgz", SHA256: sha}),
			func(s *v1alpha1.Shim) {
				s.Spec.Options = map[string]apiextensionsv1.JSON{"SystemdCgroup": {Raw: []byte("true")},
					"BinaryName": {Raw: []byte(`"x"`)}, "Level": {Raw: []byte("3")}}
				s.Spec.NodeSelector = map[string]string{}
				s.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromString("25%"))
			})},
		"requirements and verify interval": {shim: validShim("ok-day2", func(s *v1alpha1.Shim) {
			s.Spec.Requirements.Containerd = ">=1.7, <3"
			s.Spec.Verify.Interval = &metav1.Duration{Duration: 30 * time.Minute}
		})},
		"verify switched off": {shim: validShim("ok-verify-off", func(s *v1alpha1.Shim) {
			s.Spec.Verify.Interval = &metav1.Duration{}
		})},
		"verify interval too short": {
			shim:    validShim("bad-verify", func(s *v1alpha1.Shim) { s.Spec.Verify.Interval = &metav1.Duration{Duration: 30 * time.Second} }),
			wantErr: "verify.interval must be 0s (off) or at least 1m",
		},
		"requirements not a constraint": {
			shim:    validShim("bad-requirements", func(s *v1alpha1.Shim) { s.Spec.Requirements.Containerd = "2.x; rm -rf /" }),
			wantErr: "requirements.containerd must be a semantic version constraint",
		},
		"no source": {
			shim:    validShim("bad-nosource", func(s *v1alpha1.Shim) { s.Spec.Source = v1alpha1.ShimSource{} }),
			wantErr: "source must set exactly one of oci, http or builtin",
		},
		"two sources": {
			shim: validShim("bad-twosources", func(s *v1alpha1.Shim) {
				s.Spec.Source.OCI = &v1alpha1.OCISource{Image: "r/i:1", Path: "/s"}
			}),
			wantErr: "source must set exactly one of oci, http or builtin",
		},
		"handler not a DNS label": {
			shim:    validShim("bad-handler", func(s *v1alpha1.Shim) { s.Spec.Handler = "Spin_V2" }),
			wantErr: "handler must be a DNS label",
		},
		"runtime type shape": {
			shim:    validShim("bad-runtimetype", func(s *v1alpha1.Shim) { s.Spec.RuntimeType = "spin" }),
			wantErr: "runtimeType must look like io.containerd.<name>.<version>",
		},
		"runtime type without version": {
			shim:    validShim("bad-runtimetype2", func(s *v1alpha1.Shim) { s.Spec.RuntimeType = "io.containerd.spin" }),
			wantErr: "runtimeType must look like io.containerd.<name>.<version>",
		},
		"sha256 too short": {
			shim:    validShim("bad-sha", httpSrc(v1alpha1.HTTPArtifact{Arch: "amd64", URL: "https://e.com/s", SHA256: "abc"})),
			wantErr: "sha256 must be 64 lowercase hex characters",
		},
		"plain http url": {
			shim:    validShim("bad-url", httpSrc(v1alpha1.HTTPArtifact{Arch: "amd64", URL: "http://e.com/s", SHA256: sha})),
			wantErr: "url must be an https:// URL",
		},
		"duplicate platform": {
			shim: validShim("bad-dup", httpSrc(v1alpha1.HTTPArtifact{Arch: "amd64", URL: "https://e.com/a", SHA256: sha},
				v1alpha1.HTTPArtifact{Arch: "amd64", URL: "https://e.com/b", SHA256: sha})),
			wantErr: "http.platforms must not list the same os/arch twice",
		},
		"no platforms": {
			shim:    validShim("bad-noplatforms", httpSrc()),
			wantErr: "spec.source.http.platforms",
		},
		"maxUnavailable zero": {
			shim:    validShim("bad-mu0", func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromInt32(0)) }),
			wantErr: "maxUnavailable must be a positive integer or a percentage from 1% to 100%",
		},
		"maxUnavailable not a percent": {
			shim:    validShim("bad-mupct", func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromString("ten")) }),
			wantErr: "maxUnavailable must be a positive integer or a percentage from 1% to 100%",
		},
		"maxUnavailable above 100%": {
			shim:    validShim("bad-mu101", func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxUnavailable = ptr.To(intstr.FromString("101%")) }),
			wantErr: "maxUnavailable must be a positive integer or a percentage from 1% to 100%",
		},
		"negative maxFailures": {
			shim:    validShim("bad-mf", func(s *v1alpha1.Shim) { s.Spec.Rollout.MaxFailures = ptr.To(int32(-1)) }),
			wantErr: "spec.rollout.maxFailures",
		},
		"unknown builtin": {
			shim:    validShim("bad-builtin", func(s *v1alpha1.Shim) { s.Spec.Source.Builtin = "wasmtime" }),
			wantErr: `supported values: "wazero"`,
		},
		"relative oci path": {
			shim: validShim("bad-ocipath", func(s *v1alpha1.Shim) {
				s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: "r/i:1", Path: "shim"}}
			}),
			wantErr: "oci.path must be an absolute path inside the image",
		},
		"oci image with space": {
			shim: validShim("bad-ociimage", func(s *v1alpha1.Shim) {
				s.Spec.Source = v1alpha1.ShimSource{OCI: &v1alpha1.OCISource{Image: "r/i :1", Path: "/s"}}
			}),
			wantErr: "oci.image must not contain whitespace",
		},
		"runtime class name": {
			shim:    validShim("bad-rcname", func(s *v1alpha1.Shim) { s.Spec.RuntimeClass.Name = "Not_Valid" }),
			wantErr: "runtimeClass.name must be a DNS subdomain",
		},
		"name too long": {
			shim:    validShim(strings.Repeat("n", 59)),
			wantErr: "metadata.name must be at most 58 characters",
		},
		"name with dots": {
			shim:    validShim("bad.name"),
			wantErr: "metadata.name must be a DNS label",
		},
		// Option values must survive storage as the TOML type they were written as
		// (config/policy/shim-options.yaml).
		"options of every type": {shim: validShim("ok-options", options(map[string]string{
			"Str": `"with \"quotes\", C:\\path, a\ttab, \u00e9\u65e5"`, "Max": "9223372036854775807",
			"Min": "-9223372036854775808", "Ratio": "0.25", "Tiny": "1e-7", "On": "true", "List": `["a", "b c", ""]`,
			"Empty": "[]"}))},
		"option integer beyond int64": {
			shim:    validShim("bad-opt-int", options(map[string]string{"Big": "18446744073709551616"})),
			wantErr: "spec.options: Big: a value must be a string, a boolean, an integer from -9223372036854775808 to 9223372036854775807",
		},
		"option whole-number float": {
			shim:    validShim("bad-opt-float", options(map[string]string{"Two": "2.0"})),
			wantErr: "spec.options: Two: a value must be",
		},
		"option object": {
			shim:    validShim("bad-opt-obj", options(map[string]string{"Nested": `{"a":1}`})),
			wantErr: "spec.options: Nested: a value must be",
		},
		"option list of numbers": {
			shim:    validShim("bad-opt-list", options(map[string]string{"Ints": "[1, 2]", "Ok": `"x"`})),
			wantErr: "spec.options: Ints: a value must be",
		},
		"option name not a bare key": {
			shim:    validShim("bad-opt-name", options(map[string]string{"with space": "1"})),
			wantErr: "spec.options: with space: an option name must be a TOML bare key",
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := k8s.Create(ctx, tc.shim)
			if err == nil {
				t.Cleanup(func() {
					// No manager runs in this test: drop the object directly.
					_ = k8s.Delete(context.Background(), tc.shim)
				})
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("valid Shim refused: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("invalid Shim accepted; want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}

	t.Run("handler is immutable", func(t *testing.T) {
		s := validShim("imm-handler", func(s *v1alpha1.Shim) { s.Spec.Handler = "one" })
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
		s.Spec.Handler = "two"
		err := k8s.Update(ctx, s)
		if err == nil || !strings.Contains(err.Error(), "handler is immutable") {
			t.Fatalf("update of handler: %v; want 'handler is immutable'", err)
		}
	})

	t.Run("changed options are checked again", func(t *testing.T) {
		s := validShim("upd-options", options(map[string]string{"A": "1"}))
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
		options(map[string]string{"A": "1", "B": "1.0"})(s)
		if err := k8s.Update(ctx, s); err == nil || !strings.Contains(err.Error(), "spec.options: B: a value must be") {
			t.Fatalf("update to a whole-number float: %v; want it refused", err)
		}
	})

	t.Run("null and empty nodeSelector round-trip apart", func(t *testing.T) {
		for name, sel := range map[string]map[string]string{"rt-null": nil, "rt-empty": {}} {
			s := validShim(name, func(s *v1alpha1.Shim) { s.Spec.NodeSelector = sel })
			if err := k8s.Create(ctx, s); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), s) })
			var got v1alpha1.Shim
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), &got); err != nil {
				t.Fatal(err)
			}
			if (got.Spec.NodeSelector == nil) != (sel == nil) {
				t.Fatalf("%s: nodeSelector read back as %#v, want %#v", name, got.Spec.NodeSelector, sel)
			}
		}
	})
}
