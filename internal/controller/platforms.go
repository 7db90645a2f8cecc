package controller

import (
	"context"
	"net/http"
	"slices"
	"sync"

	"github.com/wasmkube/wasmkube/internal/rollout"
	"github.com/wasmkube/wasmkube/pkg/shimsource"
)

// PlatformLister lists the platforms an OCI image offers. dockerConfig is the content of a docker
// config.json with the pull credentials, or nil for anonymous access.
type PlatformLister interface {
	Platforms(ctx context.Context, image string, dockerConfig []byte) ([]rollout.Platform, error)
}

// RegistryPlatforms lists platforms with pkg/shimsource: an index's image platforms, or a single
// image's config platform, the same rule the installer applies when it fetches.
type RegistryPlatforms struct {
	// Transport is the HTTP transport (nil: the default).
	Transport http.RoundTripper
}

// Platforms implements PlatformLister.
func (r RegistryPlatforms) Platforms(ctx context.Context, image string, dockerConfig []byte) ([]rollout.Platform, error) {
	ps, err := shimsource.Platforms(ctx, shimsource.OCI{Image: image, DockerConfigJSON: dockerConfig, Transport: r.Transport})
	if err != nil {
		return nil, err
	}
	out := make([]rollout.Platform, 0, len(ps))
	for _, p := range ps {
		p = p.Normalize() // index entries may spell an architecture the way uname does (x86_64, aarch64)
		if !slices.Contains(out, rollout.Platform{OS: p.OS, Arch: p.Architecture}) {
			out = append(out, rollout.Platform{OS: p.OS, Arch: p.Architecture})
		}
	}
	return out, nil
}

// platformCache remembers each spec hash's resolved platforms, so an OCI index is read once per spec.
type platformCache struct {
	mu     sync.Mutex
	byHash map[string][]rollout.Platform
}

func (c *platformCache) get(hash string) ([]rollout.Platform, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byHash[hash]
	return p, ok
}

func (c *platformCache) put(hash string, p []rollout.Platform) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHash == nil {
		c.byHash = map[string][]rollout.Platform{}
	}
	c.byHash[hash] = p
}
