package nodeinstaller

import (
	"context"
	"errors"
	"fmt"

	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/pkg/platform"
	"github.com/wasmkube/wasmkube/pkg/shimsource"
)

// Source says where the shim binary comes from: exactly one of an OCI image, an HTTPS download or a
// builtin shim.
type Source struct {
	// OCIImage is the image holding the shim at OCIPath; RegistryConfig a docker config.json with
	// credentials for it.
	OCIImage, OCIPath, RegistryConfig string
	// HTTPURL is the download, HTTPSHA256 its checksum; HTTPInsecure allows plain http.
	HTTPURL, HTTPSHA256 string
	HTTPInsecure        bool
	// Builtin names a shim shipped in the installer image under BuiltinDir.
	Builtin, BuiltinDir string
	// Platform is the platform to fetch for, e.g. linux/arm64; empty means this machine's.
	Platform string
}

// Fetcher checks the source and returns the installer's fetcher for it.
func (s Source) Fetcher() (installer.Fetcher, error) {
	p := platform.Host()
	if s.Platform != "" {
		var err error
		if p, err = platform.Parse(s.Platform); err != nil {
			return nil, fmt.Errorf("--platform: %w", err)
		}
	}
	var sources []shimsource.Source
	if s.OCIImage != "" {
		if s.OCIPath == "" {
			return nil, errors.New("--source-oci needs --source-path (the binary's path inside the image)")
		}
		sources = append(sources, shimsource.OCI{Image: s.OCIImage, Path: s.OCIPath, DockerConfig: s.RegistryConfig})
	}
	if s.HTTPURL != "" {
		if s.HTTPSHA256 == "" {
			return nil, errors.New("--source-http-url needs --source-sha256")
		}
		sources = append(sources, shimsource.HTTP{URL: s.HTTPURL, SHA256: s.HTTPSHA256, AllowInsecureHTTP: s.HTTPInsecure})
	}
	if s.Builtin != "" {
		sources = append(sources, shimsource.Builtin{Dir: s.BuiltinDir, Name: s.Builtin})
	}
	if len(sources) != 1 {
		return nil, errors.New("give exactly one shim source: --source-oci, --source-http-url or --source-builtin")
	}
	return fetcher{src: sources[0], platform: p}, nil
}

// fetcher adapts a shimsource.Source to the installer for one platform.
type fetcher struct {
	src      shimsource.Source
	platform platform.Platform
}

func (f fetcher) Fetch(ctx context.Context, dest string) (installer.Fetched, error) {
	st, err := f.src.Stage(ctx, f.platform, dest)
	if errors.Is(err, shimsource.ErrNoPlatform) {
		return nil, fmt.Errorf("%w: %w", installer.ErrUnsupportedPlatform, err)
	}
	if err != nil {
		return nil, err
	}
	return staged{st}, nil
}

// staged adapts a shimsource.Staged to the installer.
type staged struct{ st *shimsource.Staged }

func (s staged) Finish() (installer.Artifact, error) {
	a, err := s.st.Finish()
	if err != nil {
		return installer.Artifact{}, err
	}
	return installer.Artifact{File: a.File, SHA256: a.SHA256, Digest: a.Digest, Platform: a.Platform.String()}, nil
}

func (s staged) Discard() { s.st.Discard() }
