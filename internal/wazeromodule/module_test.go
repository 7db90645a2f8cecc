package wazeromodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/wasmkube/wasmkube/internal/wazeroguest"
)

func TestParseEntry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ arg0, path, fn string }{
		{"/app.wasm", "/app.wasm", ""},
		{"/app.wasm#serve", "/app.wasm", "serve"},
		{"#serve", "", "serve"},
		{"app.wasm#a#b", "app.wasm", "a#b"},
		{"", "", ""},
	} {
		if p, fn := ParseEntry(tc.arg0); p != tc.path || fn != tc.fn {
			t.Errorf("ParseEntry(%q) = %q, %q; want %q, %q", tc.arg0, p, fn, tc.path, tc.fn)
		}
	}
}

func TestFromRootfs(t *testing.T) {
	t.Parallel()
	wasm := wazeroguest.Tiny("hi", 0)
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside.wasm")
	for name, data := range map[string][]byte{"app/app.wasm": wasm, "notwasm.wasm": []byte("#!/bin/sh\n"), outside: wasm} {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, name)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"rel.wasm": "app/app.wasm", "abs.wasm": "/app/app.wasm", "escape.wasm": outside,
		"up.wasm": "../../../../app/app.wasm", "dev-link.wasm": "/zero.wasm"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// An image can ship a FIFO or a device node where its entrypoint points: neither may be opened
	// (a FIFO would block Create, a device could be anything on the host).
	if err := unix.Mkfifo(filepath.Join(root, "fifo.wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(root, "zero.wasm"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		err  error // nil: found
	}{
		{"/app/app.wasm", nil},
		{"app/app.wasm", nil},
		{"/rel.wasm", nil},
		{"/../../app/app.wasm", nil}, // cleaned to /app/app.wasm
		{"/nope.wasm", os.ErrNotExist},
		{"/notwasm.wasm", ErrNotWasm},
		{"/app", ErrNotWasm},
		{"/", os.ErrNotExist},
		{"/abs.wasm", nil},               // an absolute link starts at the rootfs
		{"/escape.wasm", os.ErrNotExist}, // ... so this one names a file the rootfs does not have
		{"/up.wasm", nil},                // ".." stops at the rootfs
		{"/fifo.wasm", ErrNotWasm},
		{"/zero.wasm", ErrNotWasm},
		{"/dev-link.wasm", ErrNotWasm},
	} {
		src, err := FromRootfs(root, tc.path)
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.err == nil && (!bytes.Equal(src.Wasm, wasm) || src.Digest() != digest.FromBytes(wasm)):
			t.Errorf("%s: wrong content or digest %s", tc.path, src.Digest())
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s: got %v, want %v", tc.path, err, tc.err)
		}
	}
}

// TestWasmLayer builds artifacts in a real (local) containerd content store and picks their module.
func TestWasmLayer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(mediaType string, v any) ocispec.Descriptor {
		b, ok := v.([]byte)
		if !ok {
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := content.WriteBlob(ctx, store, d.Digest.String(), bytes.NewReader(b), d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	wasm := wazeroguest.Tiny("artifact", 0)
	layer := put(LayerMediaTypes[0], wasm)
	manifest := func(os string, layers ...ocispec.Descriptor) ocispec.Descriptor {
		cfg := put(ocispec.MediaTypeImageConfig, ocispec.Image{Platform: ocispec.Platform{OS: os, Architecture: "wasm"}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{}}})
		return put(ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: layers})
	}
	tar := put(ocispec.MediaTypeImageLayer, []byte("not a wasm layer"))
	index := func(ms map[string]ocispec.Descriptor) ocispec.Descriptor {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
		for os, m := range ms {
			m.Platform = &ocispec.Platform{OS: os, Architecture: "wasm"}
			if os == "linux" {
				m.Platform.Architecture = "amd64"
			}
			idx.Manifests = append(idx.Manifests, m)
		}
		return put(ocispec.MediaTypeImageIndex, idx)
	}
	for _, tc := range []struct {
		name   string
		target ocispec.Descriptor
		found  bool
	}{
		{"single manifest", manifest("wasip1", tar, layer), true},
		{"wasi platform", manifest("wasi", layer), true},
		{"index", index(map[string]ocispec.Descriptor{"linux": manifest("linux", tar), "wasip1": manifest("wasip1", layer)}), true},
		{"index without wasm platform", index(map[string]ocispec.Descriptor{"linux": manifest("linux", tar)}), false},
		{"no wasm layer", manifest("wasip1", tar), false},
	} {
		got, err := wasmLayer(ctx, store, tc.target)
		if tc.found && (err != nil || got.Digest != layer.Digest) {
			t.Errorf("%s: got %v, %v; want layer %s", tc.name, got.Digest, err, layer.Digest)
		}
		if !tc.found && !errors.Is(err, ErrNoModule) {
			t.Errorf("%s: got %v, %v; want ErrNoModule", tc.name, got.Digest, err)
		}
	}
}
