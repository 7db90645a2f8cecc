package images

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// testTag names the images the integration tests build; testVersion is stamped into their binaries.
const (
	testTag     = "ghcr.io/wasmkube/%s:test"
	testVersion = "v9.9.9-test"
)

// scratch is a directory for this package's integration builds, removed by TestMain.
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmkube-images-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildResult is one real build of every image definition.
type buildResult struct {
	built   map[string]*Built
	outputs map[string]Output
	err     error
}

var (
	firstBuildOnce sync.Once
	firstBuild     buildResult
)

// moduleDir is the repository root (this package lives one level below it).
func moduleDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// buildAll compiles and writes every image under dir, as `make images` does.
func buildAll(ctx context.Context, mod, dir string) buildResult {
	r := buildResult{built: map[string]*Built{}, outputs: map[string]Output{}}
	b := Builder{Compiler: Compiler{ModuleDir: mod, Version: testVersion}, Epoch: time.Unix(0, 0), WorkDir: filepath.Join(dir, "bin")}
	for _, def := range Definitions() {
		built, err := b.Build(ctx, def)
		if err != nil {
			r.err = err
			return r
		}
		ref, err := name.NewTag(fmt.Sprintf(testTag, def.Name))
		if err != nil {
			r.err = err
			return r
		}
		out, err := Write(filepath.Join(dir, "out"), built, ref)
		if err != nil {
			r.err = err
			return r
		}
		r.built[def.Name], r.outputs[def.Name] = built, out
	}
	return r
}

// realBuild returns the package's shared build of the real images, made on first use.
func realBuild(t *testing.T) buildResult {
	t.Helper()
	testenv.Integration(t)
	mod := moduleDir(t)
	firstBuildOnce.Do(func() { firstBuild = buildAll(context.Background(), mod, filepath.Join(scratch, "first")) })
	if firstBuild.err != nil {
		t.Fatalf("build the images: %v", firstBuild.err)
	}
	return firstBuild
}

func TestIntegrationBuildReproducible(t *testing.T) {
	first := realBuild(t)
	second := buildAll(context.Background(), moduleDir(t), filepath.Join(scratch, "second"))
	if second.err != nil {
		t.Fatalf("second build: %v", second.err)
	}
	for _, def := range Definitions() {
		a, b := first.built[def.Name], second.built[def.Name]
		if da, db := digest(t, a.Index), digest(t, b.Index); da != db {
			t.Errorf("%s: two builds of the same sources gave index digests %s and %s", def.Name, da, db)
		}
		for i := range a.Images {
			if da, db := digest(t, a.Images[i].Image), digest(t, b.Images[i].Image); da != db {
				t.Errorf("%s %s: image digests %s and %s", def.Name, a.Images[i].Platform.String(), da, db)
			}
		}
		ar, errA := os.ReadFile(first.outputs[def.Name].Archive)
		br, errB := os.ReadFile(second.outputs[def.Name].Archive)
		if errA != nil || errB != nil || !bytes.Equal(ar, br) {
			t.Errorf("%s: the OCI archives of two builds differ (errors %v, %v)", def.Name, errA, errB)
		}
	}
}

// elfMachines maps GOARCH to the ELF machine its binaries carry.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func TestIntegrationBuiltImages(t *testing.T) {
	r := realBuild(t)
	for _, def := range Definitions() {
		built := r.built[def.Name]
		m, err := built.Index.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var platforms []string
		for _, d := range m.Manifests {
			platforms = append(platforms, d.Platform.String())
		}
		if got, want := strings.Join(platforms, ","), "linux/amd64,linux/arm64"; got != want {
			t.Errorf("%s: index platforms = %s, want %s", def.Name, got, want)
		}
		for _, pi := range built.Images {
			files := layerFiles(t, pi.Image)
			for _, bin := range def.Binaries {
				e, ok := files[strings.TrimPrefix(bin.Path, "/")]
				if !ok {
					t.Errorf("%s %s: no %s in the image", def.Name, pi.Platform.String(), bin.Path)
					continue
				}
				checkStaticELF(t, def.Name+" "+pi.Platform.String()+" "+bin.Path, []byte(e.data), elfMachines[pi.Platform.Architecture])
			}
		}
	}
}

// checkStaticELF fails t unless data is a statically linked ELF executable for machine.
func checkStaticELF(t *testing.T, what string, data []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: not an ELF file: %v", what, err)
		return
	}
	defer f.Close()
	if f.Machine != machine || f.Type != elf.ET_EXEC {
		t.Errorf("%s: ELF %v %v, want an executable for %v", what, f.Machine, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: dynamically linked (%v segment); images have no libc", what, p.Type)
		}
	}
}

// TestIntegrationImportIntoContainerd imports the build's outputs into a real containerd 2.4.2 the way
// a user loads them on a node, and runs the host platform's binaries from the imported images.
func TestIntegrationImportIntoContainerd(t *testing.T) {
	r := realBuild(t)
	c := startContainerd(t)
	ctx := context.Background()
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	var foreign v1.Platform
	for _, p := range DefaultPlatforms {
		if p.Architecture != runtime.GOARCH {
			foreign = p
		}
	}
	for _, def := range Definitions() {
		out := r.outputs[def.Name]
		ref := fmt.Sprintf(testTag, def.Name)
		indexDigest := digest(t, r.built[def.Name].Index)
		t.Run(def.Name, func(t *testing.T) {
			// The multi-arch OCI archive imports as the index under its containerd name.
			if _, err := c.ctr(ctx, "images", "import", out.Archive); err != nil {
				t.Fatalf("import the OCI archive: %v", err)
			}
			ls, err := c.ctr(ctx, "images", "ls")
			if err != nil {
				t.Fatal(err)
			}
			if !containsLine(ls, ref, indexDigest.String()) {
				t.Errorf("after importing %s, `ctr images ls` lacks %s at %s:\n%s", out.Archive, ref, indexDigest, ls)
			}
			c.waitCRIImage(t, ref)
			runBinaries(t, c, def, ref)
			if _, err := c.ctr(ctx, "images", "rm", "--sync", ref); err != nil {
				t.Fatal(err)
			}

			// A docker-save tarball imports as is for the host's platform ...
			if _, err := c.ctr(ctx, "images", "import", out.Tarballs[host.String()]); err != nil {
				t.Fatalf("import the %s tarball: %v", host.String(), err)
			}
			c.waitCRIImage(t, ref)
			runBinaries(t, c, def, ref)
			if _, err := c.ctr(ctx, "images", "rm", "--sync", ref); err != nil {
				t.Fatal(err)
			}
			// ... and needs --platform for another one: ctr filters it out otherwise.
			if foreign.Architecture != "" {
				if _, err := c.ctr(ctx, "images", "import", out.Tarballs[foreign.String()]); err == nil {
					t.Errorf("importing the %s tarball without --platform succeeded; the README's instructions assume it fails", foreign.String())
				}
				if _, err := c.ctr(ctx, "images", "import", "--platform", foreign.String(), out.Tarballs[foreign.String()]); err != nil {
					t.Errorf("import the %s tarball with --platform: %v", foreign.String(), err)
				}
				if _, err := c.ctr(ctx, "images", "rm", "--sync", ref); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// runBinaries starts each of def's binaries from the imported image with --version through runc,
// proving the image unpacks, the binary runs without a shell, and the build stamped its version.
func runBinaries(t *testing.T, c *containerd, def Definition, ref string) {
	t.Helper()
	for i, bin := range def.Binaries {
		id := fmt.Sprintf("wk-%s-%d-%d", def.Name, os.Getpid(), i)
		out, err := c.ctr(context.Background(), "run", "--rm", ref, id, bin.Path, "--version")
		if err != nil {
			t.Errorf("run %s from %s: %v", bin.Path, ref, err)
			continue
		}
		if !strings.Contains(out, testVersion) {
			t.Errorf("%s --version in %s does not name the stamped version %s:\n%s", bin.Path, ref, testVersion, out)
		}
	}
}

func containsLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, f := range fields {
			all = all && strings.Contains(line, f)
		}
		if all {
			return true
		}
	}
	return false
}
