package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/internal/cli"
)

func noEnv(string) (string, bool) { return "", false }

// writeFakeLayouts writes every image definition, assembled from stand-in binaries, to dir as `build`
// would, and returns the index digest of each.
func writeFakeLayouts(t *testing.T, dir string) map[string]v1.Hash {
	t.Helper()
	digests := map[string]v1.Hash{}
	for _, def := range images.Definitions() {
		var imgs []images.PlatformImage
		for _, p := range images.DefaultPlatforms {
			bins := map[string][]byte{}
			for _, b := range def.Binaries {
				bins[b.Path] = []byte(b.Path + p.String())
			}
			img, err := images.Assemble(def, p, bins, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, images.PlatformImage{Platform: p, Image: img})
		}
		idx, err := images.NewIndex(imgs)
		if err != nil {
			t.Fatal(err)
		}
		built := &images.Built{Definition: def, Index: idx, Images: imgs}
		if _, err := images.Write(dir, built, name.MustParseReference("ghcr.io/wasmkube/x:dev").(name.Tag)); err != nil {
			t.Fatal(err)
		}
		if digests[def.Name], err = idx.Digest(); err != nil {
			t.Fatal(err)
		}
	}
	return digests
}

func TestPushCommand(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	digests := writeFakeLayouts(t, out)
	var stdout bytes.Buffer
	err = runPush(context.Background(), []string{"--registry", u.Host + "/team", "--tag", "v1", "--out", out, "--insecure"},
		noEnv, cli.Streams{Out: &stdout, ErrOut: io.Discard})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	for n, want := range digests {
		ref, err := name.ParseReference(u.Host+"/team/"+n+":v1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref)
		if err != nil {
			t.Fatalf("%s not in the registry: %v", ref, err)
		}
		if desc.Digest != want {
			t.Errorf("%s: pushed %s, want %s", ref, desc.Digest, want)
		}
		if !strings.Contains(stdout.String(), "pushed "+ref.String()+"@"+want.String()) {
			t.Errorf("output lacks the pushed reference of %s:\n%s", n, stdout.String())
		}
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	tests := map[string]struct {
		run  func(context.Context, []string, cli.LookupEnv, cli.Streams) error
		args []string
		env  map[string]string
		want string
	}{
		"push without registry":   {runPush, []string{"--out", empty}, nil, "--registry is required"},
		"push before build":       {runPush, []string{"--registry", "example.com/x", "--out", empty}, nil, "run `make images` first"},
		"push an unknown image":   {runPush, []string{"--registry", "example.com/x", "--image", "nope"}, nil, `--image "nope": unknown image`},
		"bad tag":                 {runPush, []string{"--registry", "example.com/x", "--tag", "a b", "--out", empty}, nil, `--tag "a b"`},
		"bad platform":            {runBuild, []string{"--platform", "linux/amd64/v1/x", "--out", empty}, nil, `--platform "linux/amd64/v1/x"`},
		"not the module root":     {runBuild, []string{"--module-dir", empty, "--out", empty}, nil, "no go.mod there"},
		"bad SOURCE_DATE_EPOCH":   {runBuild, nil, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, `SOURCE_DATE_EPOCH="yesterday"`},
		"build an unknown image":  {runBuild, []string{"--image", "nope"}, nil, `--image "nope": unknown image`},
		"unknown flag from build": {runBuild, []string{"--nope"}, nil, "unknown flag"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := tc.run(context.Background(), tc.args, env, cli.Streams{Out: io.Discard, ErrOut: io.Discard})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
