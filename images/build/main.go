// Command build builds wasmkube's container images without Docker and pushes them (`make images`,
// `make push`). Run it from the module root:
//
//	go run ./images/build build [--tag T] [--registry R] [--out _output/images]
//	go run ./images/build push --registry R [--tag T] [--out _output/images]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Dispatch(ctx, "images/build", commands(), os.Args[1:], os.LookupEnv,
		cli.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "images/build: %v\n", err)
		os.Exit(1)
	}
}

func commands() []cli.Command {
	return []cli.Command{
		{Name: "build", Short: "compile the binaries and write OCI layouts and docker tarballs", Run: runBuild},
		{Name: "push", Short: "push the images written by build to a registry", Run: runPush},
	}
}

// common are the flags both commands share.
type common struct {
	out      string
	registry string
	tag      string
	only     []string
}

func (c *common) register(fs *pflag.FlagSet, registryDefault string) {
	fs.StringVar(&c.out, "out", "_output/images", "output directory of the OCI layouts and tarballs")
	fs.StringVar(&c.registry, "registry", registryDefault, "registry and namespace of the image references, e.g. ghcr.io/wasmkube")
	fs.StringVar(&c.tag, "tag", "dev", "image tag")
	fs.StringSliceVar(&c.only, "image", nil, "build or push only these images (default: all)")
}

// definitions returns the selected image definitions.
func (c *common) definitions() ([]images.Definition, error) {
	all := images.Definitions()
	if len(c.only) == 0 {
		return all, nil
	}
	var out []images.Definition
	for _, n := range c.only {
		found := false
		for _, d := range all {
			if d.Name == n {
				out, found = append(out, d), true
			}
		}
		if !found {
			return nil, fmt.Errorf("--image %q: unknown image; known: %s, %s", n, images.ManagerName, images.NodeInstallerName)
		}
	}
	return out, nil
}

func (c *common) ref(image string, opts ...name.Option) (name.Tag, error) {
	s := strings.TrimSuffix(c.registry, "/") + "/" + image + ":" + c.tag
	t, err := name.NewTag(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q from --registry %q and --tag %q: %w", s, c.registry, c.tag, err)
	}
	return t, nil
}

func runBuild(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	var c common
	c.register(fs, "ghcr.io/wasmkube")
	moduleDir := fs.String("module-dir", ".", "root of the wasmkube Go module")
	platformList := fs.StringSlice("platform", []string{"linux/amd64", "linux/arm64"}, "platforms to build")
	epochDefault := int64(0)
	if s, ok := env("SOURCE_DATE_EPOCH"); ok && s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds: %w", s, err)
		}
		epochDefault = v
	}
	epoch := fs.Int64("source-date-epoch", epochDefault, "the time recorded in images, in Unix seconds (default $SOURCE_DATE_EPOCH or 0)")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	defs, err := c.definitions()
	if err != nil {
		return err
	}
	var platforms []v1.Platform
	for _, s := range *platformList {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return fmt.Errorf("--platform %q: %w", s, err)
		}
		platforms = append(platforms, *p)
	}
	mod, err := filepath.Abs(*moduleDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(mod, "go.mod")); err != nil {
		return fmt.Errorf("--module-dir %s: no go.mod there; run from the repository root: %w", *moduleDir, err)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	work, err := os.MkdirTemp(c.out, ".bin-")
	if err != nil {
		return fmt.Errorf("create build directory: %w", err)
	}
	defer os.RemoveAll(work)

	b := images.Builder{
		Compiler:  images.Compiler{ModuleDir: mod, Version: c.tag},
		Platforms: platforms,
		Epoch:     time.Unix(*epoch, 0),
		WorkDir:   work,
	}
	tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tPLATFORM\tDIGEST\tSIZE")
	for _, def := range defs {
		ref, err := c.ref(def.Name)
		if err != nil {
			return err
		}
		built, err := b.Build(ctx, def)
		if err != nil {
			return err
		}
		if _, err := images.Write(c.out, built, ref); err != nil {
			return err
		}
		if err := printBuilt(tw, ref, built); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// printBuilt writes one row per platform image and one for the index.
func printBuilt(w io.Writer, ref name.Tag, b *images.Built) error {
	for _, pi := range b.Images {
		d, err := pi.Image.Digest()
		if err != nil {
			return err
		}
		size, err := imageSize(pi.Image)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%.1f MiB\n", ref, pi.Platform.String(), d, float64(size)/(1<<20))
	}
	d, err := b.Index.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\tindex\t%s\t\n", ref, d)
	return nil
}

// imageSize is the compressed size of an image's layers.
func imageSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		total += s
	}
	return total, nil
}

func runPush(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	fs := pflag.NewFlagSet("push", pflag.ContinueOnError)
	var c common
	c.register(fs, "")
	insecure := fs.Bool("insecure", false, "allow a plain-HTTP registry (a local test registry)")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if c.registry == "" {
		return errors.New("--registry is required, e.g. --registry ghcr.io/you (make push REGISTRY=...)")
	}
	defs, err := c.definitions()
	if err != nil {
		return err
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	for _, def := range defs {
		ref, err := c.ref(def.Name, opts...)
		if err != nil {
			return err
		}
		idx, err := images.ReadLayout(filepath.Join(c.out, def.Name))
		if err != nil {
			return err
		}
		if err := images.Push(ctx, idx, ref); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(streams.Out, "pushed %s@%s\n", ref, d)
	}
	return nil
}
