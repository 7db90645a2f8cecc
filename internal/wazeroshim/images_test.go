package wazeroshim_test

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	imagespecs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/wazeromodule"
)

// The test images. The ordinary one holds the Go guest at /app.wasm (its entrypoint); the artifact
// holds a tiny module as its only layer.
const (
	guestImage    = "wasmkube.test/wasm-guest:1"
	artifactImage = "wasmkube.test/wasm-artifact:1"
)

// ordinaryImageTarball packages the Go guest as a plain linux image with /app.wasm as entrypoint.
func ordinaryImageTarball(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "guest.tar")
	if err := containerdtest.ImageTarball(guestPath, "app.wasm", guestImage, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// artifactTarball writes a Wasm OCI artifact in OCI layout tar format (what `ctr images import`
// reads): platform wasip1/wasm, one layer of runwasi's Wasm media type, no diff IDs.
func artifactTarball(t *testing.T, wasm []byte) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "artifact.tar")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(mediaType string, b []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		add("blobs/sha256/"+d.Digest.Encoded(), b)
		return d
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	platform := ocispec.Platform{OS: "wasip1", Architecture: "wasm"}
	cfg := blob(ocispec.MediaTypeImageConfig, mustJSON(ocispec.Image{
		Platform: platform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}},
	}))
	layer := blob(wazeromodule.LayerMediaTypes[0], wasm)
	m := blob(ocispec.MediaTypeImageManifest, mustJSON(ocispec.Manifest{
		Versioned: imagespecs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer},
	}))
	m.Platform = &platform
	m.Annotations = map[string]string{"io.containerd.image.name": artifactImage, ocispec.AnnotationRefName: "1"}
	add(ocispec.ImageLayoutFile, mustJSON(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}))
	add(ocispec.ImageIndexFile, mustJSON(ocispec.Index{Versioned: imagespecs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}}))
	if err := tw.Close(); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", dst, err))
	}
	return dst
}
