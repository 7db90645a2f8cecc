package installer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

// tlsServer starts an httptest TLS server and returns it with an environment that makes the
// node-installer process trust its certificate (Go reads SSL_CERT_FILE).
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, []string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, []string{"SSL_CERT_FILE=" + ca}
}

// shimImage is an image for one platform whose single layer holds the binary at /<binaryName>.
func shimImage(t *testing.T, arch string, binary []byte) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: binaryName, Mode: 0o755, Size: int64(len(binary)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(binary)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"}}); err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	return img
}

// OCI fetch through the real binary from an in-process TLS registry holding a
// two-platform index picks this node's binary; a wrong pinned digest or sha256 installs nothing;
// HTTPS download with a sha256 through httptest TLS.
func TestFetchSourcesThroughBinary(t *testing.T) {
	t.Parallel()
	n := newNode(t, containerdtest.V2, 3)
	before := n.read(configPath)
	reg, env := tlsServer(t, registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(reg.URL, "https://")

	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	mine := shimImage(t, runtime.GOARCH, n.shim)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: shimImage(t, other, []byte("#!/bin/sh\necho wrong platform\n")),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: mine, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}})
	ref, err := name.ParseReference(host + "/wasmkube/shim:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithTransport(reg.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	mineDigest, _ := mine.Digest()

	nothingInstalled := func(what string, r run) {
		t.Helper()
		if r.err == nil || r.result.Reason != installerapi.ReasonFetchFailed || r.result.Changed {
			t.Fatalf("%s: want a FetchFailed result that changed nothing, got %v %+v\n%s", what, r.err, r.result, r.stderr)
		}
		if !bytes.Equal(n.read(configPath), before) || n.exists(n.binPath) || n.exists(stateFile) || n.d.Restarts() != 0 {
			t.Fatalf("%s installed something", what)
		}
	}
	oci := func(image string) []string {
		return []string{"install", "--shim-name=" + shim, "--runtime-type=" + runtimeType, "--source-oci=" + image,
			"--source-path=/" + binaryName, "--spec-hash=oci", "--restart=signal", "--shim-dir=" + n.shimDir}
	}

	wrongPin := host + "/wasmkube/shim@sha256:" + strings.Repeat("0", 64)
	nothingInstalled("wrong pinned digest", n.installer(env, oci(wrongPin)...))

	r := n.installer(env, oci(ref.String())...).mustSucceed(t, "OCI install")
	if r.SourceDigest != mineDigest.String() || r.Platform != "linux/"+runtime.GOARCH || !bytes.Equal(n.read(n.binPath), n.shim) {
		t.Fatalf("OCI install picked the wrong artifact: %+v (want digest %s)", r, mineDigest)
	}
	if err := n.d.PodRunning(n.d.RunPod("from-oci", shim)); err != nil {
		t.Fatalf("pod through the OCI-installed shim: %v", err)
	}
	n.uninstall(nil).mustSucceed(t, "uninstall")

	// HTTPS: the raw binary with its sha256.
	files, env2 := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(n.shim) }))
	sum := sha256.Sum256(n.shim)
	httpArgs := func(sha string) []string {
		return []string{"install", "--shim-name=" + shim, "--runtime-type=" + runtimeType, "--source-http-url=" + files.URL + "/" + binaryName,
			"--source-sha256=" + sha, "--restart=signal", "--shim-dir=" + n.shimDir}
	}
	restarts := n.d.Restarts()
	r2 := n.installer(env2, httpArgs(strings.Repeat("ab", 32))...)
	if r2.err == nil || r2.result.Reason != installerapi.ReasonFetchFailed || n.exists(n.binPath) || n.d.Restarts() != restarts ||
		!bytes.Equal(n.read(configPath), before) {
		t.Fatalf("wrong sha256: %v %+v", r2.err, r2.result)
	}
	r = n.installer(env2, httpArgs(hex.EncodeToString(sum[:]))...).mustSucceed(t, "HTTPS install")
	if r.BinarySHA256 != hex.EncodeToString(sum[:]) || !bytes.Equal(n.read(n.binPath), n.shim) {
		t.Fatalf("HTTPS install: %+v", r)
	}
	n.d.WaitReady(shim, true)
}
