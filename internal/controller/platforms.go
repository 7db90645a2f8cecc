package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wasmkube/wasmkube/internal/rollout"
)

// PlatformLister lists the platforms an OCI image offers. dockerConfig is the content of a docker
// config.json with the pull credentials, or nil for anonymous access.
type PlatformLister interface {
	Platforms(ctx context.Context, image string, dockerConfig []byte) ([]rollout.Platform, error)
}

// RegistryPlatforms lists platforms from a registry: an index's manifests, or a single image's config.
type RegistryPlatforms struct {
	// Transport is the HTTP transport (nil: the default).
	Transport http.RoundTripper
}

// Platforms implements PlatformLister.
func (r RegistryPlatforms) Platforms(ctx context.Context, image string, dockerConfig []byte) ([]rollout.Platform, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, fmt.Errorf("parse image reference %q: %w", image, err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	if len(dockerConfig) > 0 {
		auth, err := dockerConfigAuth(dockerConfig, ref.Context().RegistryStr())
		if err != nil {
			return nil, err
		}
		opts = append(opts, remote.WithAuth(auth))
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", image, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", image, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("read index manifest %s: %w", image, err)
		}
		var out []rollout.Platform
		for _, d := range m.Manifests {
			if d.Platform != nil {
				out = append(out, rollout.Platform{OS: d.Platform.OS, Arch: d.Platform.Architecture})
			}
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", image, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config %s: %w", image, err)
	}
	return []rollout.Platform{{OS: cfg.OS, Arch: cfg.Architecture}}, nil
}

// dockerConfigAuth picks the credentials for registry from a docker config.json.
func dockerConfigAuth(data []byte, registry string) (authn.Authenticator, error) {
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parse docker config for %s: %w", registry, err)
	}
	for _, key := range []string{registry, "https://" + registry, "http://" + registry} {
		if a, ok := cfg.Auths[key]; ok {
			return authn.FromConfig(a), nil
		}
	}
	return authn.Anonymous, nil
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
