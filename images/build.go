package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SourceURL is the org.opencontainers.image.source label of every image.
const SourceURL = "https://github.com/wasmkube/wasmkube"

// Builder compiles a Definition's binaries for each platform and assembles its images.
type Builder struct {
	// Compiler builds the binaries.
	Compiler Compiler
	// Platforms to build; DefaultPlatforms when empty.
	Platforms []v1.Platform
	// Epoch is the only time recorded in images (SOURCE_DATE_EPOCH); the zero value means 1970-01-01.
	Epoch time.Time
	// WorkDir receives the compiled binaries, one subdirectory per image and platform.
	WorkDir string
}

// Built is a built image: the multi-arch index and the image of each platform, in the same order as
// the index's manifests.
type Built struct {
	Definition Definition
	Index      v1.ImageIndex
	Images     []PlatformImage
}

// PlatformImage is one platform's image.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// Build compiles every binary of def for every platform and assembles the images and their index.
func (b Builder) Build(ctx context.Context, def Definition) (*Built, error) {
	platforms := b.Platforms
	if len(platforms) == 0 {
		platforms = DefaultPlatforms
	}
	built := &Built{Definition: def}
	for _, p := range platforms {
		dir := filepath.Join(b.WorkDir, def.Name, p.OS+"-"+p.Architecture)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("build image %s: %w", def.Name, err)
		}
		binaries := make(map[string][]byte, len(def.Binaries))
		for _, bin := range def.Binaries {
			out := filepath.Join(dir, filepath.Base(bin.Path))
			if err := b.Compiler.Compile(ctx, bin.Package, p, out); err != nil {
				return nil, fmt.Errorf("build image %s: %w", def.Name, err)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				return nil, fmt.Errorf("build image %s: %w", def.Name, err)
			}
			binaries[bin.Path] = data
		}
		img, err := Assemble(def, p, binaries, b.Epoch)
		if err != nil {
			return nil, err
		}
		built.Images = append(built.Images, PlatformImage{Platform: p, Image: img})
	}
	idx, err := NewIndex(built.Images)
	if err != nil {
		return nil, fmt.Errorf("build image %s: %w", def.Name, err)
	}
	built.Index = idx
	return built, nil
}

// Assemble makes the single-layer image of def for one platform. binaries maps each Binary.Path of def
// to the compiled bytes; every binary must be present.
func Assemble(def Definition, platform v1.Platform, binaries map[string][]byte, epoch time.Time) (v1.Image, error) {
	epoch = epoch.UTC()
	files := append([]File(nil), def.Files...)
	for _, bin := range def.Binaries {
		data, ok := binaries[bin.Path]
		if !ok {
			return nil, fmt.Errorf("assemble image %s for %s: no binary for %s", def.Name, platform.String(), bin.Path)
		}
		files = append(files, File{Path: bin.Path, Mode: 0o755, Data: data})
	}
	tarBytes, err := LayerTar(files, epoch)
	if err != nil {
		return nil, fmt.Errorf("assemble image %s for %s: %w", def.Name, platform.String(), err)
	}
	layer, err := Layer(tarBytes)
	if err != nil {
		return nil, fmt.Errorf("assemble image %s for %s: %w", def.Name, platform.String(), err)
	}
	created := v1.Time{Time: epoch}
	cfg := &v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		Variant:      platform.Variant,
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       def.User,
			Entrypoint: def.Entrypoint,
			Env:        append([]string{"PATH=/"}, def.Env...),
			WorkingDir: "/",
			Labels: map[string]string{
				"org.opencontainers.image.title":       def.Name,
				"org.opencontainers.image.description": def.Description,
				"org.opencontainers.image.source":      SourceURL,
				"org.opencontainers.image.licenses":    "Apache-2.0",
			},
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("assemble image %s for %s: %w", def.Name, platform.String(), err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   created,
			CreatedBy: "wasmkube images/build: " + strings.Join(binaryPaths(def), " "),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("assemble image %s for %s: %w", def.Name, platform.String(), err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return img, nil
}

// NewIndex joins per-platform images into an OCI image index, in the given order.
func NewIndex(images []PlatformImage) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, pi := range images {
		p := pi.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        pi.Image,
			Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &p},
		})
	}
	if _, err := idx.Digest(); err != nil {
		return nil, fmt.Errorf("compute index: %w", err)
	}
	return idx, nil
}

func binaryPaths(def Definition) []string {
	out := make([]string, 0, len(def.Binaries))
	for _, b := range def.Binaries {
		out = append(out, b.Path)
	}
	return out
}
