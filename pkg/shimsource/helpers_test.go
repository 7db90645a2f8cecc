package shimsource

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

// entry is one tar entry of a test layer or archive.
type entry struct {
	name, body, link string
	typ              byte
}

func file(name, body string) entry     { return entry{name: name, body: body, typ: tar.TypeReg} }
func dirEntry(name string) entry       { return entry{name: name, typ: tar.TypeDir} }
func symlinkTo(name, to string) entry  { return entry{name: name, link: to, typ: tar.TypeSymlink} }
func hardlinkTo(name, to string) entry { return entry{name: name, link: to, typ: tar.TypeLink} }

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o755, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzLayer is a gzip-compressed OCI layer.
func gzLayer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	b := tarOf(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// zstdLayer is a zstd-compressed OCI layer.
func zstdLayer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	b := tarOf(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rawLayer is an uncompressed OCI layer: its blob is the tar itself.
func rawLayer(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	return static.NewLayer(tarOf(t, entries...), types.OCIUncompressedLayer)
}

// imageOf builds an OCI image for p (no platform in the config if p is zero).
func imageOf(t *testing.T, p platform.Platform, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant,
		RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layers...); err != nil {
		t.Fatal(err)
	}
	return img
}

// platformImage is one entry of a test index.
type platformImage struct {
	p   platform.Platform
	img v1.Image
}

// indexOf builds an OCI index whose entries carry the given platforms, in order.
func indexOf(entries ...platformImage) v1.ImageIndex {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, e := range entries {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: e.img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: e.p.OS, Architecture: e.p.Architecture, Variant: e.p.Variant}}})
	}
	return idx
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testRegistry is go-containerregistry's in-process registry behind an httptest server, with a
// replaceable middleware for faults (tampering, auth) and a log of requests.
type testRegistry struct {
	host      string
	transport http.RoundTripper
	next      http.Handler

	mu       sync.Mutex
	mw       func(w http.ResponseWriter, r *http.Request, next http.Handler)
	requests []string
}

func startRegistry(t *testing.T, useTLS bool) *testRegistry {
	t.Helper()
	r := &testRegistry{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewUnstartedServer(r)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected TLS handshake failures
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	r.transport = srv.Client().Transport
	return r
}

func (r *testRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	r.mu.Lock()
	r.requests = append(r.requests, scheme+" "+req.Method+" "+req.URL.Path)
	mw := r.mw
	r.mu.Unlock()
	if mw != nil {
		mw(w, req, r.next)
		return
	}
	r.next.ServeHTTP(w, req)
}

// use installs a middleware for all later requests.
func (r *testRegistry) use(mw func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mw = mw
}

func (r *testRegistry) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

func (r *testRegistry) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r *testRegistry) pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	if err := remote.Write(r.ref(t, ref), img, remote.WithTransport(r.transport)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func (r *testRegistry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	if err := remote.WriteIndex(r.ref(t, ref), idx, remote.WithTransport(r.transport)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// tamperBlob rewrites the body of GET .../blobs/<digest> with change.
func tamperBlob(digest v1.Hash, change func([]byte) []byte) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, req *http.Request, next http.Handler) {
		if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/blobs/"+digest.String()) {
			next.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		body := change(bytes.Clone(rec.Body.Bytes()))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}
}

// flipByteAt inverts one byte of a blob at offset off (negative: from the end).
func flipByteAt(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0xff
		return b
	}
}

// requireEmptyDir fails unless dir has no entries at all (no binary, no temporary file).
func requireEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left in the destination directory", e.Name())
	}
}

// requireOnly fails unless dir holds exactly the named file with the given content, mode 0755.
func requireOnly(t *testing.T, dir, name string, content []byte) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("destination holds %v, want only %s", names, name)
	}
	p := filepath.Join(dir, name)
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("%s: content %.40q..., want %.40q...", p, got, content)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want 0755", p, fi.Mode().Perm())
	}
}
