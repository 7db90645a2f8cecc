package shimsource

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

const shimPath = "/containerd-shim-spin-v2"

var (
	linuxAMD64 = platform.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = platform.Platform{OS: "linux", Architecture: "arm64"}
)

// binary returns distinct, deterministic, non-trivial content for a test shim.
func binary(label string) string { return strings.Repeat(label+" shim;", 40000) }

// ociFixture is a registry holding the images the OCI tests read.
type ociFixture struct {
	reg *testRegistry
	// digests of pushed manifests by name
	index, amd64, arm64, single v1.Hash
	// the amd64 image's top layer (gzip) and the uncompressed image's layer
	amd64Top, rawTop v1.Hash
}

func newOCIFixture(t *testing.T, useTLS bool) *ociFixture {
	t.Helper()
	f := &ociFixture{reg: startRegistry(t, useTLS)}
	top := gzLayer(t, file("containerd-shim-spin-v2", binary("amd64")))
	amd := imageOf(t, linuxAMD64,
		gzLayer(t, dirEntry("bin/"), file("bin/sh", "sh"), file("containerd-shim-spin-v2", binary("old amd64"))),
		top)
	arm := imageOf(t, linuxARM64, gzLayer(t, file("./containerd-shim-spin-v2", binary("arm64"))))
	attestation := imageOf(t, platform.Platform{}, gzLayer(t, file("sbom.json", "{}")))
	multi := indexOf(platformImage{linuxAMD64, amd}, platformImage{linuxARM64, arm},
		platformImage{platform.Platform{OS: "unknown", Architecture: "unknown"}, attestation})
	f.reg.pushIndex(t, "shims/spin:multi", multi)
	f.index, f.amd64, f.arm64, f.amd64Top = digestOf(t, multi), digestOf(t, amd), digestOf(t, arm), digestOf(t, top)

	single := imageOf(t, linuxAMD64, gzLayer(t, file("containerd-shim-spin-v2", binary("single"))))
	f.reg.pushImage(t, "shims/single:v1", single)
	f.single = digestOf(t, single)

	f.reg.pushImage(t, "shims/noplatform:v1", imageOf(t, platform.Platform{}, gzLayer(t, file("containerd-shim-spin-v2", "x"))))
	armv6 := platform.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	f.reg.pushIndex(t, "shims/arm:v1", indexOf(
		platformImage{armv6, imageOf(t, armv6, gzLayer(t, file("containerd-shim-spin-v2", binary("armv6"))))},
		platformImage{platform.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
			imageOf(t, linuxARM64, gzLayer(t, file("containerd-shim-spin-v2", binary("arm64v8"))))}))

	base := gzLayer(t, dirEntry("usr/"), dirEntry("usr/bin/"), file("usr/bin/real-shim", binary("linked")),
		dirEntry("opt/"), dirEntry("opt/shim/"), file("opt/shim/containerd-shim-spin-v2", binary("opt")),
		file("containerd-shim-spin-v2", binary("base")), symlinkTo("bin", "usr/bin"))
	for tag, top := range map[string]v1.Layer{
		"whiteout":      gzLayer(t, file(".wh.containerd-shim-spin-v2", "")),
		"opaque":        gzLayer(t, dirEntry("opt/shim/"), file("opt/shim/.wh..wh..opq", "")),
		"opaque-refill": gzLayer(t, dirEntry("opt/shim/"), file("opt/shim/.wh..wh..opq", ""), file("opt/shim/containerd-shim-spin-v2", binary("refilled"))),
		"parent-gone":   gzLayer(t, file(".wh.opt", "")),
		"parent-file":   gzLayer(t, file("opt", "not a directory")),
		"symlink":       gzLayer(t, symlinkTo("containerd-shim-spin-v2", "/usr/bin/real-shim")),
		"relative-link": gzLayer(t, dirEntry("a/"), symlinkTo("a/shim", "../usr/bin/real-shim")),
		"escaping-link": gzLayer(t, dirEntry("a/"), symlinkTo("a/shim", "../../../../usr/bin/real-shim")),
		"link-loop":     gzLayer(t, symlinkTo("loop1", "loop2"), symlinkTo("loop2", "loop1")),
		"hardlink":      gzLayer(t, file("x/real", binary("hard")), hardlinkTo("containerd-shim-spin-v2", "x/real")),
		"directory":     gzLayer(t, dirEntry("containerd-shim-spin-v2/")),
		"zstd":          zstdLayer(t, file("containerd-shim-spin-v2", binary("zstd"))),
		"raw":           rawLayer(t, file("containerd-shim-spin-v2", binary("raw"))),
	} {
		img := imageOf(t, linuxAMD64, base, top)
		f.reg.pushImage(t, "shims/layers:"+tag, img)
		if tag == "raw" {
			f.rawTop = digestOf(t, top)
		}
	}
	return f
}

func (f *ociFixture) oci(ref, path string) OCI {
	return OCI{Image: f.reg.host + "/" + ref, Path: path, Transport: f.reg.transport}
}

func TestOCIFetch(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	armv7 := platform.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	tests := []struct {
		name         string
		ref, path    string
		platform     platform.Platform
		want         string // content; "" when an error is expected
		wantFile     string
		wantPlatform platform.Platform
		wantDigest   func() v1.Hash
		wantErr      error
	}{
		{name: "index picks amd64 top layer", ref: "shims/spin:multi", path: shimPath, platform: linuxAMD64,
			want: binary("amd64"), wantPlatform: linuxAMD64, wantDigest: func() v1.Hash { return f.amd64 }},
		{name: "index picks arm64", ref: "shims/spin:multi", path: shimPath, platform: linuxARM64,
			want: binary("arm64"), wantPlatform: linuxARM64, wantDigest: func() v1.Hash { return f.arm64 }},
		{name: "arm64/v8 node matches arm64", ref: "shims/spin:multi", path: shimPath,
			platform: platform.Platform{OS: "linux", Architecture: "aarch64", Variant: "v8"}, want: binary("arm64"), wantPlatform: linuxARM64},
		{name: "platform missing", ref: "shims/spin:multi", path: shimPath, platform: platform.Platform{OS: "linux", Architecture: "riscv64"},
			wantErr: ErrNoPlatform},
		{name: "attestation entry is not a platform", ref: "shims/spin:multi", path: "/sbom.json",
			platform: platform.Platform{OS: "unknown", Architecture: "unknown"}, wantErr: ErrNoPlatform},
		{name: "arm/v7 node takes arm/v6", ref: "shims/arm:v1", path: shimPath, platform: armv7,
			want: binary("armv6"), wantPlatform: platform.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{name: "arm/v5 node cannot take arm/v6", ref: "shims/arm:v1", path: shimPath,
			platform: platform.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}, wantErr: ErrNoPlatform},
		{name: "arm64 entry declared as v8", ref: "shims/arm:v1", path: shimPath, platform: linuxARM64,
			want: binary("arm64v8"), wantPlatform: platform.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{name: "single-platform image", ref: "shims/single:v1", path: shimPath, platform: linuxAMD64,
			want: binary("single"), wantPlatform: linuxAMD64, wantDigest: func() v1.Hash { return f.single }},
		{name: "single-platform image, other platform", ref: "shims/single:v1", path: shimPath, platform: linuxARM64,
			wantErr: ErrNoPlatform},
		{name: "image without platform", ref: "shims/noplatform:v1", path: shimPath, platform: linuxAMD64, wantErr: ErrNoPlatform},
		{name: "digest-pinned index", ref: "shims/spin@" + f.index.String(), path: shimPath, platform: linuxARM64,
			want: binary("arm64"), wantPlatform: linuxARM64},
		{name: "tag and digest", ref: "shims/spin:multi@" + f.index.String(), path: shimPath, platform: linuxAMD64,
			want: binary("amd64"), wantPlatform: linuxAMD64},
		{name: "digest-pinned platform manifest", ref: "shims/spin@" + f.arm64.String(), path: shimPath, platform: linuxARM64,
			want: binary("arm64"), wantPlatform: linuxARM64, wantDigest: func() v1.Hash { return f.arm64 }},
		{name: "wrong pinned digest", ref: "shims/spin@sha256:" + strings.Repeat("ab", 32), path: shimPath, platform: linuxAMD64,
			wantErr: ErrNotFound},
		{name: "unknown tag", ref: "shims/spin:nope", path: shimPath, platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "unknown repository", ref: "shims/nope:v1", path: shimPath, platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "file not in image", ref: "shims/spin:multi", path: "/containerd-shim-slight-v1", platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "lower layer file", ref: "shims/spin:multi", path: "/bin/sh", platform: linuxAMD64, want: "sh", wantFile: "sh"},
		{name: "whiteout hides lower file", ref: "shims/layers:whiteout", path: shimPath, platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "whiteout leaves other files", ref: "shims/layers:whiteout", path: "/usr/bin/real-shim", platform: linuxAMD64,
			want: binary("linked"), wantFile: "real-shim"},
		{name: "opaque directory hides lower file", ref: "shims/layers:opaque", path: "/opt/shim/containerd-shim-spin-v2",
			platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "opaque directory with new file", ref: "shims/layers:opaque-refill", path: "/opt/shim/containerd-shim-spin-v2",
			platform: linuxAMD64, want: binary("refilled")},
		{name: "whited-out parent", ref: "shims/layers:parent-gone", path: "/opt/shim/containerd-shim-spin-v2",
			platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "parent replaced by a file", ref: "shims/layers:parent-file", path: "/opt/shim/containerd-shim-spin-v2",
			platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "absolute symlink into lower layer", ref: "shims/layers:symlink", path: shimPath, platform: linuxAMD64,
			want: binary("linked")},
		{name: "relative symlink", ref: "shims/layers:relative-link", path: "/a/shim", platform: linuxAMD64,
			want: binary("linked"), wantFile: "shim"},
		{name: "symlink escaping the root stays inside", ref: "shims/layers:escaping-link", path: "/a/shim", platform: linuxAMD64,
			want: binary("linked"), wantFile: "shim"},
		{name: "symlinked parent directory", ref: "shims/layers:symlink", path: "/bin/real-shim", platform: linuxAMD64,
			want: binary("linked"), wantFile: "real-shim"},
		{name: "symlink loop", ref: "shims/layers:link-loop", path: "/loop1", platform: linuxAMD64, wantErr: ErrNotFound},
		{name: "hard link", ref: "shims/layers:hardlink", path: shimPath, platform: linuxAMD64, want: binary("hard")},
		{name: "directory, not a file", ref: "shims/layers:directory", path: shimPath, platform: linuxAMD64},
		{name: "zstd layer", ref: "shims/layers:zstd", path: shimPath, platform: linuxAMD64, want: binary("zstd")},
		{name: "uncompressed layer", ref: "shims/layers:raw", path: shimPath, platform: linuxAMD64, want: binary("raw")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := t.TempDir()
			a, err := f.oci(tc.ref, tc.path).Fetch(context.Background(), tc.platform, dest)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Fetch succeeded with %+v, want an error", a)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("Fetch error %v, want %v", err, tc.wantErr)
				}
				t.Logf("error (expected): %v", err)
				requireEmptyDir(t, dest)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			name := tc.wantFile
			if name == "" {
				name = filepath.Base(shimPath)
			}
			requireOnly(t, dest, name, []byte(tc.want))
			sum := sha256.Sum256([]byte(tc.want))
			if a.File != filepath.Join(dest, name) || a.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("artifact %s sha256 %s, want %s sha256 %x", a.File, a.SHA256, filepath.Join(dest, name), sum)
			}
			if tc.wantPlatform != (platform.Platform{}) && a.Platform != tc.wantPlatform {
				t.Errorf("artifact platform %s, want %s", a.Platform, tc.wantPlatform)
			}
			if tc.wantDigest != nil && a.Digest != tc.wantDigest().String() {
				t.Errorf("artifact digest %s, want %s", a.Digest, tc.wantDigest())
			}
			if !strings.HasSuffix(a.Source, " "+tc.path) {
				t.Errorf("artifact source %q does not name %s", a.Source, tc.path)
			}
			if !strings.HasPrefix(a.Digest, "sha256:") || !strings.HasPrefix(a.ImageDigest, "sha256:") {
				t.Errorf("artifact digests %q / %q, want sha256:...", a.Digest, a.ImageDigest)
			}
			if pinned, ok := strings.CutPrefix(tc.ref[strings.Index(tc.ref, "@")+1:], "sha256:"); ok && a.ImageDigest != "sha256:"+pinned {
				t.Errorf("image digest %s, want the pinned sha256:%s", a.ImageDigest, pinned)
			}
		})
	}
}

func TestOCIPlatforms(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	tests := []struct {
		ref     string
		want    []platform.Platform
		wantErr error
	}{
		{ref: "shims/spin:multi", want: []platform.Platform{linuxAMD64, linuxARM64}},
		{ref: "shims/spin@" + f.index.String(), want: []platform.Platform{linuxAMD64, linuxARM64}},
		{ref: "shims/arm:v1", want: []platform.Platform{{OS: "linux", Architecture: "arm", Variant: "v6"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		{ref: "shims/single:v1", want: []platform.Platform{linuxAMD64}},
		{ref: "shims/noplatform:v1", want: []platform.Platform{}},
		{ref: "shims/nope:v1", wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			t.Parallel()
			got, err := Platforms(context.Background(), f.oci(tc.ref, shimPath))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Platforms error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("Platforms returned nil without an error")
			}
			slices.SortFunc(got, func(a, b platform.Platform) int { return strings.Compare(a.String(), b.String()) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("Platforms = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOCITampered serves corrupted layers and manifests: every case must fail with a digest
// error and leave the destination empty.
func TestOCITampered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ref     func(f *ociFixture) string
		fault   func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler)
		wantErr error
	}{
		{
			name: "gzip layer byte flipped",
			ref:  func(*ociFixture) string { return "shims/spin:multi" },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				return tamperBlob(f.amd64Top, flipByteAt(100))
			},
			wantErr: ErrDigestMismatch,
		},
		{
			// the tar stays valid, only the digest can tell
			name: "uncompressed layer content changed",
			ref:  func(*ociFixture) string { return "shims/layers:raw" },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				return tamperBlob(f.rawTop, flipByteAt(600))
			},
			wantErr: ErrDigestMismatch,
		},
		{
			name: "layer truncated",
			ref:  func(*ociFixture) string { return "shims/layers:raw" },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				return tamperBlob(f.rawTop, func(b []byte) []byte { return b[:len(b)-512] })
			},
			wantErr: ErrDigestMismatch,
		},
		{
			name: "pinned index answered with another manifest",
			ref:  func(f *ociFixture) string { return "shims/spin@" + f.index.String() },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				return swapManifest(f.index, f.reg.host, "shims/single:v1")
			},
			wantErr: ErrDigestMismatch,
		},
		{
			// go-containerregistry trusts Docker-Content-Digest for signed schema 1 manifests;
			// the pin must still hold.
			name: "pinned index answered with another manifest and a forged digest header",
			ref:  func(f *ociFixture) string { return "shims/spin@" + f.index.String() },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				swap := swapManifest(f.index, f.reg.host, "shims/single:v1")
				return func(w http.ResponseWriter, req *http.Request, next http.Handler) {
					if strings.HasSuffix(req.URL.Path, "/manifests/"+f.index.String()) {
						w = forgeHeaders{w, map[string]string{"Content-Type": string(types.DockerManifestSchema1Signed),
							"Docker-Content-Digest": f.index.String()}}
					}
					swap(w, req, next)
				}
			},
			wantErr: ErrDigestMismatch,
		},
		{
			name: "index entry answered with another manifest",
			ref:  func(*ociFixture) string { return "shims/spin:multi" },
			fault: func(f *ociFixture) func(http.ResponseWriter, *http.Request, http.Handler) {
				return swapManifest(f.amd64, f.reg.host, "shims/single:v1")
			},
			wantErr: ErrDigestMismatch,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newOCIFixture(t, false)
			f.reg.use(tc.fault(f))
			dest := t.TempDir()
			a, err := f.oci(tc.ref(f), shimPath).Fetch(context.Background(), linuxAMD64, dest)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Fetch = %+v, %v; want error %v", a, err, tc.wantErr)
			}
			t.Logf("error (expected): %v", err)
			requireEmptyDir(t, dest)
		})
	}
}

// swapManifest answers GET/HEAD .../manifests/<digest> with the manifest of other.
func swapManifest(digest v1.Hash, host, other string) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		if !strings.HasSuffix(req.URL.Path, "/manifests/"+digest.String()) {
			next.ServeHTTP(w, req)
			return
		}
		repo, tag, _ := strings.Cut(other, ":")
		r2 := req.Clone(req.Context())
		r2.URL.Path = "/v2/" + repo + "/manifests/" + tag
		next.ServeHTTP(w, r2)
	}
}

// forgeHeaders overrides response headers just before they are sent.
type forgeHeaders struct {
	http.ResponseWriter
	set map[string]string
}

func (f forgeHeaders) WriteHeader(code int) {
	for k, v := range f.set {
		f.Header().Set(k, v)
	}
	f.ResponseWriter.WriteHeader(code)
}

func TestOCIAuth(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	f.reg.use(func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		if u, p, ok := req.BasicAuth(); !ok || u != "puller" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
	cfgDir := t.TempDir()
	writeConfig := func(name, content string) string {
		p := filepath.Join(cfgDir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auth := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	}
	tests := []struct {
		name    string
		config  string // file content; "" = no DockerConfig
		inline  bool   // pass as DockerConfigJSON instead of a file
		wantErr error  // nil = success
		anyErr  bool
	}{
		{name: "auth field", config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.reg.host, auth("puller", "s3cret"))},
		{name: "username and password with scheme", config: fmt.Sprintf(`{"auths":{"http://%s/v2/":{"username":"puller","password":"s3cret"}}}`, f.reg.host)},
		{name: "repository-scoped key", config: fmt.Sprintf(`{"auths":{"%s/shims":{"auth":%q},%q:{"auth":%q}}}`,
			f.reg.host, auth("puller", "s3cret"), f.reg.host, auth("puller", "wrong"))},
		{name: "legacy dockercfg", config: fmt.Sprintf(`{%q:{"auth":%q}}`, f.reg.host, auth("puller", "s3cret"))},
		{name: "in memory", config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.reg.host, auth("puller", "s3cret")), inline: true},
		{name: "no credentials", wantErr: ErrUnauthorized},
		{name: "credentials for another registry", config: fmt.Sprintf(`{"auths":{"other.example":{"auth":%q}}}`, auth("puller", "s3cret")),
			wantErr: ErrUnauthorized},
		{name: "wrong password", config: fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.reg.host, auth("puller", "nope")), wantErr: ErrUnauthorized},
		{name: "unparseable config", config: `{"auths":`, anyErr: true},
		{name: "auth not base64", config: fmt.Sprintf(`{"auths":{%q:{"auth":"%%%%"}}}`, f.reg.host), anyErr: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := f.oci("shims/spin:multi", shimPath)
			switch {
			case tc.inline:
				o.DockerConfigJSON = []byte(tc.config)
			case tc.config != "":
				o.DockerConfig = writeConfig(fmt.Sprintf("config-%d.json", i), tc.config)
			}
			dest := t.TempDir()
			_, err := o.Fetch(context.Background(), linuxARM64, dest)
			if tc.wantErr == nil && !tc.anyErr {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				requireOnly(t, dest, filepath.Base(shimPath), []byte(binary("arm64")))
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Fetch error %v, want %v", err, tc.wantErr)
			}
			t.Logf("error (expected): %v", err)
			requireEmptyDir(t, dest)
		})
	}
	t.Run("missing config file", func(t *testing.T) {
		t.Parallel()
		o := f.oci("shims/spin:multi", shimPath)
		o.DockerConfig = filepath.Join(cfgDir, "absent.json")
		if _, err := o.Fetch(context.Background(), linuxARM64, t.TempDir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Fetch error %v, want a not-exist error", err)
		}
	})
}

func TestOCIOverTLS(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, true)
	for _, p := range []platform.Platform{linuxAMD64, linuxARM64} {
		dest := t.TempDir()
		a, err := f.oci("shims/spin:multi", shimPath).Fetch(context.Background(), p, dest)
		if err != nil {
			t.Fatalf("Fetch %s over TLS: %v", p, err)
		}
		requireOnly(t, dest, filepath.Base(shimPath), []byte(binary(p.Architecture)))
		if a.Platform != p {
			t.Errorf("platform %s, want %s", a.Platform, p)
		}
	}
	for _, r := range f.reg.log() {
		if !strings.HasPrefix(r, "https ") {
			t.Errorf("request not over TLS: %s", r)
		}
	}
	// Without the test server's CA the certificate is untrusted.
	o := f.oci("shims/spin:multi", shimPath)
	o.Transport = nil
	dest := t.TempDir()
	if _, err := o.Fetch(context.Background(), linuxAMD64, dest); err == nil {
		t.Fatal("Fetch with an untrusted certificate succeeded")
	}
	requireEmptyDir(t, dest)
}

// TestOCIInsecure: a plain-http registry under a name go-containerregistry treats as remote is
// refused unless Insecure is set.
func TestOCIInsecure(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	var d net.Dialer
	transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, f.reg.host)
	}}
	t.Cleanup(transport.CloseIdleConnections)
	for _, insecure := range []bool{false, true} {
		o := OCI{Image: "registry.wasmkube.test/shims/spin:multi", Path: shimPath, Transport: transport, Insecure: insecure}
		dest := t.TempDir()
		_, err := o.Fetch(context.Background(), linuxAMD64, dest)
		if insecure {
			if err != nil {
				t.Fatalf("Fetch with Insecure: %v", err)
			}
			requireOnly(t, dest, filepath.Base(shimPath), []byte(binary("amd64")))
			continue
		}
		if err == nil {
			t.Fatal("Fetch from a plain-http registry without Insecure succeeded")
		}
		t.Logf("error (expected): %v", err)
		requireEmptyDir(t, dest)
	}
}

func TestOCILimits(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	for _, tc := range []struct {
		name  string
		ref   string
		limit int64
	}{
		{name: "layer over the cap", ref: "shims/spin:multi", limit: 1024},
		{name: "file over the cap", ref: "shims/layers:zstd", limit: 200 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := f.oci(tc.ref, shimPath)
			o.MaxBytes = tc.limit
			dest := t.TempDir()
			if _, err := o.Fetch(context.Background(), linuxAMD64, dest); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Fetch error %v, want ErrTooLarge", err)
			}
			requireEmptyDir(t, dest)
		})
	}
}

func TestOCIInvalid(t *testing.T) {
	t.Parallel()
	f := newOCIFixture(t, false)
	for _, o := range []OCI{
		{Image: "UPPER/case:tag", Path: shimPath},
		{Image: f.reg.host + "/shims/spin:multi", Path: "relative/path", Transport: f.reg.transport},
		{Image: f.reg.host + "/shims/spin:multi", Path: "/", Transport: f.reg.transport},
		{Image: f.reg.host + "/shims/spin:multi", Path: shimPath, Transport: f.reg.transport,
			DockerConfig: "/x.json", DockerConfigJSON: []byte("{}")},
	} {
		dest := t.TempDir()
		if _, err := o.Fetch(context.Background(), linuxAMD64, dest); err == nil {
			t.Errorf("Fetch(%+v) succeeded, want an error", o)
		} else {
			t.Logf("error (expected): %v", err)
		}
		requireEmptyDir(t, dest)
	}
	if _, err := f.oci("shims/spin:multi", shimPath).Fetch(context.Background(), linuxAMD64, filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("Fetch into a missing directory succeeded")
	}
}
