package containerdtest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// pausePackage is the harness's pause command.
const pausePackage = "github.com/wasmkube/wasmkube/internal/containerdtest/pause"

// ImageTarball packages the static binary at binary as a single-layer linux image for this machine's
// architecture, with the file at /<entry> as its entrypoint, and writes it in `docker save` format
// (what `ctr images import` reads) to dst under the name ref.
func ImageTarball(binary, entry, ref, dst string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	content, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: entry, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	if _, err := tw.Write(content); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		return fmt.Errorf("image %s: layer: %w", ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config = v1.Config{Entrypoint: []string{"/" + entry}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	// Write to a temporary file and rename: concurrent test processes may build the same tarball.
	f, err := os.CreateTemp(filepath.Dir(dst), ".image-*")
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	defer os.Remove(f.Name())
	err = tarball.Write(tag, img, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("image %s: write %s: %w", ref, dst, err)
	}
	return nil
}

// pauseTarball returns the path of the PauseImage tarball, building it once per pause binary.
func pauseTarball(binary string) (string, error) {
	return cache.get("image "+binary, func() (string, error) {
		dst := binary + ".image.tar"
		if _, err := os.Stat(dst); err == nil {
			return dst, nil
		}
		return dst, ImageTarball(binary, "pause", PauseImage, dst)
	})
}
