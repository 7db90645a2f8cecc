package controller

import (
	"context"
	"net/http"
	"slices"
	"sync"

	"github.com/wasmkube/wasmkube/internal/rollout"
	"github.com/wasmkube/wasmkube/pkg/platform"
	"github.com/wasmkube/wasmkube/pkg/shimsource"
)

// PlatformLister lists the platforms an OCI image offers. dockerConfig is the content of a docker
// config.json with the pull credentials, or nil for anonymous access.
type PlatformLister interface {
	Platforms(ctx context.Context, image string, dockerConfig []byte) ([]rollout.Platform, error)
}

// RegistryPlatforms lists platforms with pkg/shimsource, which reads an index's image platforms, or a
// single image's config platform, the same way the installer does when it fetches.
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
	return nodePlatforms(ps), nil
}

// nodePlatforms returns the node platforms (as nodePlatform spells them) that available serves by the
// installer's rule, platform.Match: an index entry counts for the nodes of its normalized OS and
// architecture only if Match would pick some entry for such a node. So arm/v6 serves an arm node (v7
// by default), arm/v8 alone does not, and x86_64 serves amd64.
func nodePlatforms(available []platform.Platform) []rollout.Platform {
	out := []rollout.Platform{}
	for _, p := range available {
		n := p.Normalize()
		q := nodePlatform(n.OS, n.Architecture)
		if !slices.Contains(out, q) && platform.Match(available, platform.ForNode(q.OS, q.Arch)) >= 0 {
			out = append(out, q)
		}
	}
	return out
}

// nodePlatform returns a node's platform from its status.nodeInfo operating system and architecture,
// normalized with platform.ForNode (x86_64 is amd64, armhf is arm) and without the variant, which a
// node does not report.
func nodePlatform(os, arch string) rollout.Platform {
	p := platform.ForNode(os, arch)
	return rollout.Platform{OS: p.OS, Arch: p.Architecture}
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
