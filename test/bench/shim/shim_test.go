// Package shim benchmarks container start-up through containerd-shim-wazero-v1 against runc on one
// real containerd 2.4.2: container create+start until the first byte of guest output, for a tiny
// hand-assembled module, the Go guest compiled cold and loaded from the compilation cache, and the
// same Go program as a static binary under runc; plus the RSS of a running shim. It only prints a
// table; run it with `make bench-shim` (it is skipped unless -shim.bench is given).
package shim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
	"github.com/wasmkube/wasmkube/internal/wazeroshim"
)

var (
	bench = flag.Bool("shim.bench", false, "run the shim start-up benchmark")
	runs  = flag.Int("shim.runs", 15, "runs per case (cold compilation: a third of it, at least 3)")
)

const (
	wasmImage = "wasmkube.test/bench-wasm:1"
	tinyImage = "wasmkube.test/bench-tiny:1"
	runcImage = "wasmkube.test/bench-native:1"
)

type benchCase struct {
	name    string
	image   string
	args    []string
	runtime string
	opts    func(run int) any // runtime options for one run
	runs    int
}

func TestShimStartup(t *testing.T) {
	if !*bench {
		t.Skip("benchmark: run with -shim.bench (make bench-shim)")
	}
	dir := t.TempDir()
	shimDir := filepath.Join(dir, "bin")
	build(t, shimDir)
	guest, err := wazeroguest.BuildTo(dir)
	if err != nil {
		t.Fatal(err)
	}
	native, err := wazeroguest.BuildNativeTo(dir)
	if err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(dir, "tiny.wasm")
	if err := os.WriteFile(tiny, wazeroguest.Tiny("hello from the tiny module\n", 0), 0o644); err != nil {
		t.Fatal(err)
	}

	p := containerdtest.NewPaths(t, "")
	d := containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2, Paths: &p, ExtraPath: []string{shimDir}})
	for _, img := range []struct{ file, entry, ref string }{{guest, "app.wasm", wasmImage}, {tiny, "tiny.wasm", tinyImage}, {native, "guest", runcImage}} {
		tarball := filepath.Join(dir, strings.ReplaceAll(img.entry, ".", "-")+".tar")
		if err := containerdtest.ImageTarball(img.file, img.entry, img.ref, tarball); err != nil {
			t.Fatal(err)
		}
		d.ImportImage(tarball, img.ref)
	}
	client, err := containerd.New(p.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")

	cache := filepath.Join(dir, "cache")
	wazeroOpts := func(dir string) any {
		return &runtimeoptions.Options{ConfigBody: fmt.Appendf(nil, "CacheDir = %q\n", dir)}
	}
	runcOpts := &runcoptions.Options{BinaryName: p.Runc, Root: p.RuncRoot}
	n := max(*runs, 3)
	cases := []benchCase{
		{"runc: static Go binary", runcImage, []string{"/guest", "hello"}, "io.containerd.runc.v2", func(int) any { return runcOpts }, n},
		{"wazero: tiny module", tinyImage, []string{"/tiny.wasm"}, wazeroshim.RuntimeType, func(int) any { return wazeroOpts(cache) }, n},
		{"wazero: Go guest, cold", wasmImage, []string{"/app.wasm", "hello"}, wazeroshim.RuntimeType,
			func(run int) any { return wazeroOpts(filepath.Join(dir, "cold", strconv.Itoa(run))) }, max(n/3, 3)},
		{"wazero: Go guest, cached", wasmImage, []string{"/app.wasm", "hello"}, wazeroshim.RuntimeType, func(int) any { return wazeroOpts(cache) }, n},
	}
	// Warm the cache (and the image's snapshot) once, untimed.
	if _, err := startOnce(ctx, client, cases[3], "warm", 0); err != nil {
		t.Fatal(err)
	}
	medians := map[string]time.Duration{}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "case\truns\tmedian\tmin\tmax\t")
	for _, c := range cases {
		var ds []time.Duration
		for i := range c.runs {
			dur, err := startOnce(ctx, client, c, fmt.Sprintf("bench-%d", i), i)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.name, err, d.Logs())
			}
			ds = append(ds, dur)
		}
		slices.Sort(ds)
		medians[c.name] = ds[len(ds)/2]
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t\n", c.name, len(ds), ms(ds[len(ds)/2]), ms(ds[0]), ms(ds[len(ds)-1]))
	}
	w.Flush()

	rssWasm, err := runningRSS(ctx, client, benchCase{image: wasmImage, args: []string{"/app.wasm", "sleep"}, runtime: wazeroshim.RuntimeType, opts: func(int) any { return wazeroOpts(cache) }}, "containerd-shim-wazero-v1")
	if err != nil {
		t.Fatal(err)
	}
	rssRunc, err := runningRSS(ctx, client, benchCase{image: runcImage, args: []string{"/guest", "sleep"}, runtime: "io.containerd.runc.v2", opts: func(int) any { return runcOpts }}, "containerd-shim-runc-v2")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nRSS of a running Go guest: wazero shim (shim + guest in one process) %.1f MiB; runc: shim %.1f MiB + process %.1f MiB\n",
		mib(rssWasm[0]), mib(rssRunc[0]), mib(rssRunc[1]))
	runc := medians[cases[0].name]
	fmt.Printf("wasm/runc start ratio (tiny module): %.2f\n", float64(medians[cases[1].name])/float64(runc))
	fmt.Printf("wasm/runc start ratio (cold Go guest): %.2f\n", float64(medians[cases[2].name])/float64(runc))
	fmt.Printf("wasm/runc start ratio (cached Go guest): %.2f\n", float64(medians[cases[3].name])/float64(runc))
}

// startOnce creates a container, starts its task and returns the time until its first output byte;
// then it waits for the exit and removes everything.
func startOnce(ctx context.Context, client *containerd.Client, c benchCase, id string, run int) (time.Duration, error) {
	id = strings.NewReplacer(" ", "-", ":", "", ",", "").Replace(c.name) + "-" + id
	img, err := client.GetImage(ctx, c.image)
	if err != nil {
		return 0, err
	}
	ctr, err := client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img),
		containerd.WithRuntime(c.runtime, c.opts(run)),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(c.args...)))
	if err != nil {
		return 0, fmt.Errorf("create container %s: %w", id, err)
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	out := &firstByte{at: make(chan time.Time, 1)}
	start := time.Now()
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, out, io.Discard)))
	if err != nil {
		return 0, fmt.Errorf("create task %s: %w", id, err)
	}
	defer task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exit, err := task.Wait(ctx)
	if err != nil {
		return 0, err
	}
	if err := task.Start(ctx); err != nil {
		return 0, fmt.Errorf("start task %s: %w", id, err)
	}
	var first time.Time
	select {
	case first = <-out.at:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("%s: no output within 2 minutes", id)
	}
	st := <-exit
	if code, _, err := st.Result(); err != nil || code != 0 {
		return 0, fmt.Errorf("%s exited with %d (%v)", id, code, err)
	}
	return first.Sub(start), nil
}

// runningRSS starts a long-running container and returns the RSS (bytes) of its shim and, for runc,
// of the container's process.
func runningRSS(ctx context.Context, client *containerd.Client, c benchCase, shimName string) ([2]int64, error) {
	var rss [2]int64
	id := "rss-" + shimName
	img, err := client.GetImage(ctx, c.image)
	if err != nil {
		return rss, err
	}
	ctr, err := client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithRuntime(c.runtime, c.opts(0)), containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(c.args...)))
	if err != nil {
		return rss, err
	}
	defer ctr.Delete(context.WithoutCancel(ctx), containerd.WithSnapshotCleanup)
	out := &firstByte{at: make(chan time.Time, 1)}
	task, err := ctr.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, out, io.Discard)))
	if err != nil {
		return rss, err
	}
	defer task.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	if err := task.Start(ctx); err != nil {
		return rss, err
	}
	<-out.at
	time.Sleep(time.Second) // let start-up garbage settle before reading RSS
	if rss[1], err = vmRSS(int(task.Pid())); err != nil {
		return rss, err
	}
	shimPid, err := findShim(shimName, id)
	if err != nil {
		return rss, err
	}
	if rss[0], err = vmRSS(shimPid); err != nil {
		return rss, err
	}
	if shimPid == int(task.Pid()) {
		rss[1] = 0 // the guest runs inside the shim
	}
	return rss, nil
}

func findShim(name, id string) (int, error) {
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), name) && strings.Contains(string(b), "\x00-id\x00"+id+"\x00") {
			return strconv.Atoi(filepath.Base(filepath.Dir(f)))
		}
	}
	return 0, fmt.Errorf("no %s process for %s", name, id)
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// firstByte records when the first output arrives.
type firstByte struct {
	once sync.Once
	at   chan time.Time
}

func (f *firstByte) Write(p []byte) (int, error) {
	f.once.Do(func() { f.at <- time.Now() })
	return len(p), nil
}

// build compiles the shim into dir under the name containerd looks for on its PATH.
func build(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "containerd-shim-wazero-v1"), "github.com/wasmkube/wasmkube/cmd/containerd-shim-wazero-v1")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the shim: %v\n%s", err, out)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
