package images

import (
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fakeBinaries stands in for compiled binaries: distinct bytes per path and platform.
func fakeBinaries(def Definition, p v1.Platform) map[string][]byte {
	out := map[string][]byte{}
	for _, b := range def.Binaries {
		out[b.Path] = []byte("binary " + b.Path + " for " + p.String())
	}
	return out
}

func mustAssemble(t *testing.T, def Definition, p v1.Platform, bins map[string][]byte, epoch time.Time) v1.Image {
	t.Helper()
	img, err := Assemble(def, p, bins, epoch)
	if err != nil {
		t.Fatalf("Assemble(%s, %s): %v", def.Name, p.String(), err)
	}
	return img
}

func digest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return h
}

// layerFiles lists the entries of an image's single layer.
func layerFiles(t *testing.T, img v1.Image) map[string]tarEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (err %v), want exactly one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatalf("open layer: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read layer: %v", err)
	}
	entries, _ := readTar(t, b)
	out := map[string]tarEntry{}
	for _, e := range entries {
		out[e.name] = e
	}
	return out
}

func TestAssemble(t *testing.T) {
	t.Parallel()
	epoch := time.Unix(1700000000, 0)
	for _, def := range Definitions() {
		for _, p := range DefaultPlatforms {
			t.Run(def.Name+"/"+p.String(), func(t *testing.T) {
				t.Parallel()
				bins := fakeBinaries(def, p)
				img := mustAssemble(t, def, p, bins, epoch)
				if a, b := digest(t, img), digest(t, mustAssemble(t, def, p, bins, epoch)); a != b {
					t.Errorf("same inputs gave digests %s and %s", a, b)
				}
				if a, b := digest(t, img), digest(t, mustAssemble(t, def, p, bins, epoch.Add(time.Second))); a == b {
					t.Errorf("a different SOURCE_DATE_EPOCH kept digest %s", a)
				}
				changed := fakeBinaries(def, p)
				changed[def.Binaries[0].Path] = []byte("changed")
				if a, b := digest(t, img), digest(t, mustAssemble(t, def, p, changed, epoch)); a == b {
					t.Errorf("a changed binary kept digest %s", a)
				}

				if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
					t.Errorf("media type = %s (err %v), want %s", mt, err, types.OCIManifestSchema1)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.OS != p.OS || cf.Architecture != p.Architecture {
					t.Errorf("config platform = %s/%s, want %s", cf.OS, cf.Architecture, p.String())
				}
				if !cf.Created.Time.Equal(epoch) || len(cf.History) != 1 || !cf.History[0].Created.Time.Equal(epoch) {
					t.Errorf("config times: created %v, history %+v; want only %v", cf.Created, cf.History, epoch)
				}
				if cf.Config.User != def.User || strings.Join(cf.Config.Entrypoint, " ") != strings.Join(def.Entrypoint, " ") {
					t.Errorf("config user %q entrypoint %q, want %q %q", cf.Config.User, cf.Config.Entrypoint, def.User, def.Entrypoint)
				}

				files := layerFiles(t, img)
				for path, data := range bins {
					e, ok := files[strings.TrimPrefix(path, "/")]
					if !ok || e.data != string(data) || e.mode != 0o755 || e.uid != 0 {
						t.Errorf("binary %s in layer = %+v (present %v), want root-owned 0755 with the compiled bytes", path, e, ok)
					}
				}
				for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox"} {
					if _, ok := files[shell]; ok {
						t.Errorf("image holds a shell: %s", shell)
					}
				}
			})
		}
	}
}

func TestAssembleUsers(t *testing.T) {
	t.Parallel()
	p := DefaultPlatforms[0]
	cf, err := mustAssemble(t, Manager(), p, fakeBinaries(Manager(), p), time.Unix(0, 0)).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("manager user = %q, want the numeric non-root 65532:65532 (runAsNonRoot needs a number)", cf.Config.User)
	}
	inst := mustAssemble(t, NodeInstaller(), p, fakeBinaries(NodeInstaller(), p), time.Unix(0, 0))
	if _, ok := layerFiles(t, inst)["shims/containerd-shim-wazero-v1"]; !ok {
		t.Errorf("node-installer image has no /shims/containerd-shim-wazero-v1 (the installer's --builtin-dir default)")
	}
}

func TestAssembleMissingBinary(t *testing.T) {
	t.Parallel()
	_, err := Assemble(Manager(), DefaultPlatforms[0], map[string][]byte{}, time.Unix(0, 0))
	if err == nil || !strings.Contains(err.Error(), "no binary for /manager") {
		t.Fatalf("Assemble() without binaries: error = %v, want one naming /manager", err)
	}
}

func TestNewIndex(t *testing.T) {
	t.Parallel()
	def := NodeInstaller()
	var imgs []PlatformImage
	for _, p := range DefaultPlatforms {
		imgs = append(imgs, PlatformImage{Platform: p, Image: mustAssemble(t, def, p, fakeBinaries(def, p), time.Unix(0, 0))})
	}
	idx, err := NewIndex(imgs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex || len(m.Manifests) != len(imgs) {
		t.Fatalf("index %s with %d manifests, want %s with %d", m.MediaType, len(m.Manifests), types.OCIImageIndex, len(imgs))
	}
	for i, d := range m.Manifests {
		if d.Platform == nil || d.Platform.String() != imgs[i].Platform.String() || d.Digest != digest(t, imgs[i].Image) {
			t.Errorf("manifest %d = %v %s, want %s %s", i, d.Platform, d.Digest, imgs[i].Platform.String(), digest(t, imgs[i].Image))
		}
	}
	again, err := NewIndex(imgs)
	if err != nil || digest(t, again) != digest(t, idx) {
		t.Errorf("the same images gave a different index digest (err %v)", err)
	}
}
