package controller

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is an in-process OCI registry (go-containerregistry's) that counts manifest reads.
type testRegistry struct {
	host  string
	mu    sync.Mutex
	reads map[string]int // "repo:tag" -> GETs of that manifest
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{reads: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if repo, tag, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/"); ok && req.Method == http.MethodGet {
			r.mu.Lock()
			r.reads[repo+":"+tag]++
			r.mu.Unlock()
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// push writes an index with one random image per platform ("os/arch") and returns its reference.
func (r *testRegistry) push(t *testing.T, repoTag string, platforms ...string) string {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.ImageIndex = empty.Index
	for _, p := range platforms {
		os, arch, _ := strings.Cut(p, "/")
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg.OS, cfg.Architecture = os, arch
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}})
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	r.mu.Lock()
	r.reads = map[string]int{}
	r.mu.Unlock()
	return ref.String()
}

func (r *testRegistry) manifestReads(repoTag string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads[repoTag]
}
