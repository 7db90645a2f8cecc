package wazeromodule

import (
	"context"
	"fmt"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
)

// Layer media types that hold a WebAssembly module (runwasi's, then older wasm-to-oci ones).
var LayerMediaTypes = []string{
	"application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
	"application/vnd.wasm.content.layer.v1+wasm",
	"application/wasm",
}

// Platforms of Wasm OCI artifacts, in order of preference.
var Platforms = []ocispec.Platform{
	{OS: "wasip1", Architecture: "wasm"},
	{OS: "wasi", Architecture: "wasm"},
}

// IsWasmLayer reports whether a layer of this media type holds a WebAssembly module.
func IsWasmLayer(mediaType string) bool {
	for _, t := range LayerMediaTypes {
		if mediaType == t {
			return true
		}
	}
	return false
}

// FromImage reads the first Wasm layer of the image that containerID was created from, through
// containerd's containers, images and content services on conn. ctx carries the containerd namespace
// (namespaces.WithNamespace). It wraps ErrNoModule when the image has no Wasm layer.
func FromImage(ctx context.Context, conn grpc.ClientConnInterface, containerID string) (*Source, error) {
	c, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: containerID})
	if err != nil {
		return nil, fmt.Errorf("get container %s from containerd: %w", containerID, err)
	}
	name := c.GetContainer().GetImage()
	if name == "" {
		return nil, fmt.Errorf("container %s has no image: %w", containerID, ErrNoModule)
	}
	img, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("get image %s of container %s from containerd: %w", name, containerID, err)
	}
	t := img.GetImage().GetTarget()
	target := ocispec.Descriptor{MediaType: t.GetMediaType(), Digest: digest.Digest(t.GetDigest()), Size: t.GetSize()}
	store := proxy.NewContentStore(contentapi.NewContentClient(conn))
	layer, err := wasmLayer(ctx, store, target)
	if err != nil {
		return nil, fmt.Errorf("image %s of container %s: %w", name, containerID, err)
	}
	b, err := content.ReadBlob(ctx, store, layer)
	if err != nil {
		return nil, fmt.Errorf("read Wasm layer %s of image %s from containerd's content store: %w", layer.Digest, name, err)
	}
	if digest.FromBytes(b) != layer.Digest {
		return nil, fmt.Errorf("read layer %s of image %s: content does not match its digest", layer.Digest, name)
	}
	return newSource(b, fmt.Sprintf("image %s layer %s", name, layer.Digest), func() digest.Digest { return layer.Digest })
}

// wasmLayer picks the manifest for a Wasm platform (or the only manifest) and returns its first Wasm layer.
func wasmLayer(ctx context.Context, store content.Provider, target ocispec.Descriptor) (ocispec.Descriptor, error) {
	m, err := images.Manifest(ctx, store, target, platforms.Any(Platforms...))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform wasip1/wasm or wasi/wasm (%v): %w", err, ErrNoModule)
	}
	for _, l := range m.Layers {
		if IsWasmLayer(l.MediaType) {
			return l, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("no layer of media type %s: %w", LayerMediaTypes[0], ErrNoModule)
}
