package shimsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

// OCI fetches one file from an image in an OCI registry.
type OCI struct {
	// Image is REGISTRY/REPO:TAG, REGISTRY/REPO@sha256:... or both; a digest is honoured and
	// verified against what the registry serves.
	Image string
	// Path is the file inside the image, e.g. /containerd-shim-spin-v2.
	Path string
	// DockerConfig is the path of a docker config.json (a mounted pull secret); "" = anonymous.
	DockerConfig string
	// DockerConfigJSON is docker config content, an alternative to DockerConfig for callers that
	// hold the secret in memory. Set at most one of the two.
	DockerConfigJSON []byte
	// Insecure allows plain http for any registry. Without it, as in go-containerregistry and
	// docker, only loopback, localhost, *.local and RFC 1918 registries may fall back to http.
	// Layer and pinned digests are verified either way.
	Insecure bool
	// Transport is the HTTP transport (nil: remote.DefaultTransport); tests pass the httptest
	// TLS client's transport.
	Transport http.RoundTripper
	// MaxBytes caps each layer read and the extracted file (0: DefaultMaxBytes).
	MaxBytes int64
}

// image is an OCI image resolved for one platform.
type image struct {
	img         v1.Image
	manifest    *v1.Manifest
	digest      v1.Hash // of the platform's manifest
	imageDigest v1.Hash // of what the reference resolved to
	platform    platform.Platform
}

// Fetch resolves the image for p, extracts Path into destDir under the file's base name, and
// verifies every layer it reads. The binary's name in destDir is path.Base(Path).
func (o OCI) Fetch(ctx context.Context, p platform.Platform, destDir string) (Artifact, error) {
	return finish(o.Stage(ctx, p, destDir))
}

// Stage resolves, extracts and verifies as Fetch does, and returns before the binary is synced and
// renamed.
func (o OCI) Stage(ctx context.Context, p platform.Platform, destDir string) (*Staged, error) {
	target, err := imagePath(o.Path)
	if err != nil {
		return nil, err
	}
	desc, ref, err := o.get(ctx)
	if err != nil {
		return nil, err
	}
	im, err := o.resolve(desc, ref, p)
	if err != nil {
		return nil, err
	}
	st, err := newStaged(destDir, path.Base(target))
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", o.Path, o.Image, err)
	}
	defer st.discard()
	if err := extract(im, target, st, maxBytes(o.MaxBytes)); err != nil {
		return nil, fmt.Errorf("fetch %s from %s (%s): %w", o.Path, o.Image, im.platform, err)
	}
	return st.handOver(Artifact{
		SHA256:      st.sum(),
		Digest:      im.digest.String(),
		ImageDigest: im.imageDigest.String(),
		Platform:    im.platform,
		Source:      o.Image + " " + o.Path,
	}, fmt.Sprintf("fetch %s from %s", o.Path, o.Image)), nil
}

// Platforms lists the platforms an image offers: the platforms of an index's image manifests
// (attestation entries such as unknown/unknown skipped, duplicates removed), or a single
// image's config platform. The result is never nil without an error; it is empty when the image
// declares no usable platform. Pass it and a node's platform to Match to decide whether the node
// is supported; Fetch applies the same rule.
func Platforms(ctx context.Context, o OCI) ([]platform.Platform, error) {
	desc, ref, err := o.get(ctx)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		m, err := indexManifest(desc, ref)
		if err != nil {
			return nil, err
		}
		out := []platform.Platform{}
		for _, p := range imageEntries(m).plats {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", ref, classify(err))
	}
	p, err := configPlatform(img, ref)
	if err != nil {
		return nil, err
	}
	if p.OS == "" && p.Architecture == "" {
		return []platform.Platform{}, nil // known to offer nothing, unlike a nil "not resolved yet"
	}
	return []platform.Platform{p}, nil
}

// get fetches the manifest or index the reference names and checks a pinned digest.
func (o OCI) get(ctx context.Context) (*remote.Descriptor, name.Reference, error) {
	var nameOpts []name.Option
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.ParseReference(o.Image, nameOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("parse image reference %q: %w", o.Image, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("wasmkube-shimsource")}
	keychain, err := o.keychain()
	if err != nil {
		return nil, nil, err
	}
	if keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(keychain))
	}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", o.Image, classify(err))
	}
	if d, ok := ref.(name.Digest); ok {
		sum := sha256.Sum256(desc.Manifest)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != d.DigestStr() {
			return nil, nil, fmt.Errorf("read %s: registry served manifest %s: %w", o.Image, got, ErrDigestMismatch)
		}
	}
	return desc, ref, nil
}

// keychain returns the pull-secret keychain, or nil for anonymous access.
func (o OCI) keychain() (authn.Keychain, error) {
	switch {
	case o.DockerConfig != "" && len(o.DockerConfigJSON) > 0:
		return nil, errors.New("oci source: set DockerConfig or DockerConfigJSON, not both")
	case o.DockerConfig != "":
		return loadDockerKeychain(o.DockerConfig)
	case len(o.DockerConfigJSON) > 0:
		return parseDockerKeychain(o.DockerConfigJSON, "(in memory)")
	}
	return nil, nil
}

// resolve picks the image for p: from an index by its descriptors' platforms, or a single
// image whose config platform must match.
func (o OCI) resolve(desc *remote.Descriptor, ref name.Reference, p platform.Platform) (*image, error) {
	im := &image{imageDigest: desc.Digest}
	if desc.MediaType.IsIndex() {
		m, err := indexManifest(desc, ref)
		if err != nil {
			return nil, err
		}
		e := imageEntries(m)
		i := platform.Match(e.plats, p)
		if i < 0 {
			return nil, fmt.Errorf("image %s offers %s, not %s: %w", ref, platformList(e.plats), p, ErrNoPlatform)
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", ref, classify(err))
		}
		img, err := idx.Image(e.descs[i].Digest)
		if err != nil {
			return nil, fmt.Errorf("read %s manifest %s of %s: %w", e.plats[i], e.descs[i].Digest, ref, classify(err))
		}
		im.img, im.digest, im.platform = img, e.descs[i].Digest, e.plats[i]
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("read image %s: %w", ref, classify(err))
		}
		cp, err := configPlatform(img, ref)
		if err != nil {
			return nil, err
		}
		if cp.OS == "" && cp.Architecture == "" {
			return nil, fmt.Errorf("image %s declares no platform in its config; cannot tell whether it runs on %s: %w",
				ref, p, ErrNoPlatform)
		}
		if platform.Match([]platform.Platform{cp}, p) < 0 {
			return nil, fmt.Errorf("image %s is %s, not %s: %w", ref, cp, p, ErrNoPlatform)
		}
		im.img, im.digest, im.platform = img, desc.Digest, cp
	}
	m, err := im.img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest %s of %s: %w", im.digest, ref, classify(err))
	}
	im.manifest = m
	return im, nil
}

func indexManifest(desc *remote.Descriptor, ref name.Reference) (*v1.IndexManifest, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("parse index %s: %w", ref, err)
	}
	return m, nil
}

// entries are an index's image manifests with their platforms, in index order.
type entries struct {
	descs []v1.Descriptor
	plats []platform.Platform
}

// imageEntries lists the image manifests of an index that declare a platform. Entries without
// one, attestation manifests (unknown/unknown) and nested indexes are skipped.
func imageEntries(m *v1.IndexManifest) entries {
	var e entries
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() || d.Platform == nil || d.Platform.OS == "" ||
			d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown" {
			continue
		}
		e.descs = append(e.descs, d)
		e.plats = append(e.plats, platform.Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant})
	}
	return e
}

func configPlatform(img v1.Image, ref name.Reference) (platform.Platform, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return platform.Platform{}, fmt.Errorf("read image config of %s: %w", ref, classify(err))
	}
	return platform.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}

func platformList(ps []platform.Platform) string {
	if len(ps) == 0 {
		return "no platform"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// imagePath cleans an absolute path inside an image to the form tar entries use ("a/b").
func imagePath(p string) (string, error) {
	c := cleanEntry(p)
	if c == "" || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("image path %q: want an absolute file path, e.g. /containerd-shim-spin-v2", p)
	}
	return c, nil
}

// classify adds sentinels to registry errors: 404 -> ErrNotFound, 401/403 -> ErrUnauthorized,
// a manifest that does not match its requested digest -> ErrDigestMismatch.
func classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (check the pull secret): %w", ErrUnauthorized, err)
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return fmt.Errorf("%w: %w", ErrNotFound, err)
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("%w (check the pull secret): %w", ErrUnauthorized, err)
			}
		}
		return err
	}
	// go-containerregistry reports a manifest fetched by digest with other content, or a blob
	// of the wrong length, only as text.
	if msg := err.Error(); strings.Contains(msg, "does not match requested digest") ||
		strings.Contains(msg, "does not match expected size") {
		return fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	return err
}
