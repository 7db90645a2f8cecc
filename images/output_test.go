package images

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeBuilt assembles def for every default platform from fake binaries.
func fakeBuilt(t *testing.T, def Definition) *Built {
	t.Helper()
	b := &Built{Definition: def}
	for _, p := range DefaultPlatforms {
		b.Images = append(b.Images, PlatformImage{Platform: p, Image: mustAssemble(t, def, p, fakeBinaries(def, p), time.Unix(0, 0))})
	}
	idx, err := NewIndex(b.Images)
	if err != nil {
		t.Fatal(err)
	}
	b.Index = idx
	return b
}

func TestWrite(t *testing.T) {
	t.Parallel()
	built := fakeBuilt(t, NodeInstaller())
	ref := name.MustParseReference("ghcr.io/wasmkube/wasmkube-node-installer:v1").(name.Tag)
	dirs := []string{t.TempDir(), t.TempDir()}
	var outs []Output
	for _, dir := range dirs {
		out, err := Write(dir, built, ref)
		if err != nil {
			t.Fatalf("Write(): %v", err)
		}
		outs = append(outs, out)
	}
	// Writing again over existing output replaces it.
	if _, err := Write(dirs[0], built, ref); err != nil {
		t.Fatalf("Write() over existing output: %v", err)
	}

	idx, err := ReadLayout(outs[0].Layout)
	if err != nil {
		t.Fatalf("ReadLayout(): %v", err)
	}
	if got, want := digest(t, idx), digest(t, built.Index); got != want {
		t.Errorf("layout index digest = %s, want %s", got, want)
	}
	a, errA := os.ReadFile(outs[0].Archive)
	b, errB := os.ReadFile(outs[1].Archive)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("the OCI archives of two writes differ (errors %v, %v)", errA, errB)
	}
	entries, _ := readTar(t, a)
	for i := 1; i < len(entries); i++ {
		if entries[i-1].name >= entries[i].name {
			t.Errorf("archive entries not sorted: %s before %s", entries[i-1].name, entries[i].name)
		}
	}

	for _, pi := range built.Images {
		path := outs[0].Tarballs[pi.Platform.String()]
		if filepath.Base(path) != "wasmkube-node-installer-"+pi.Platform.OS+"-"+pi.Platform.Architecture+".tar" {
			t.Errorf("tarball for %s at %s", pi.Platform.String(), path)
		}
		img, err := tarball.ImageFromPath(path, &ref)
		if err != nil {
			t.Fatalf("read tarball %s: %v", path, err)
		}
		gotCfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		wantCfg, err := pi.Image.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if gotCfg != wantCfg {
			t.Errorf("tarball %s holds config %s, want %s", path, gotCfg, wantCfg)
		}
	}
}

func TestReadLayoutErrors(t *testing.T) {
	t.Parallel()
	if _, err := ReadLayout(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("ReadLayout() of a missing directory succeeded")
	}
}

func TestPush(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	built := fakeBuilt(t, Manager())
	ref, err := name.NewTag(u.Host+"/wasmkube/wasmkube-manager:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(context.Background(), built.Index, ref); err != nil {
		t.Fatalf("Push(): %v", err)
	}
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull the pushed index: %v", err)
	}
	if g, w := digest(t, got), digest(t, built.Index); g != w {
		t.Errorf("pushed index digest = %s, want %s", g, w)
	}
	for _, pi := range built.Images {
		img, err := remote.Image(ref, remote.WithPlatform(pi.Platform))
		if err != nil {
			t.Fatalf("pull %s: %v", pi.Platform.String(), err)
		}
		if g, w := digest(t, img), digest(t, pi.Image); g != w {
			t.Errorf("pulled %s image %s, want %s", pi.Platform.String(), g, w)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Push(ctx, built.Index, ref); err == nil {
		t.Error("Push() with a cancelled context succeeded")
	}
}
