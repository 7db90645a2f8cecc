package wazeroshim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf/proto"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/internal/wazeroguest"
)

// Built once per test binary (not under -short): the shim, the Go guest and the sandbox probe; and
// a compilation cache most tests share (wazero writes its entries atomically), so that the shims
// compile each module about once rather than once per test.
var (
	sharedCache string
	shimBinary  string // containerd-shim-wazero-v1
	shimBinDir  string // its directory, for PATH
	guestWasm   []byte
	guestPath   string
	probeWasm   []byte // the sandbox probe (wazeroguest.BuildProbeTo)
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "wazeroshim")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := buildArtifacts(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

func buildArtifacts(dir string) error {
	shimBinDir = filepath.Join(dir, "bin")
	shimBinary = filepath.Join(shimBinDir, "containerd-shim-wazero-v1")
	cmd := exec.Command("go", "build", "-o", shimBinary, "github.com/wasmkube/wasmkube/cmd/containerd-shim-wazero-v1")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the shim: %v\n%s", err, out)
	}
	var err error
	if guestPath, err = wazeroguest.BuildTo(dir); err != nil {
		return err
	}
	if guestWasm, err = os.ReadFile(guestPath); err != nil {
		return err
	}
	probe, err := wazeroguest.BuildProbeTo(dir)
	if err != nil {
		return err
	}
	sharedCache = filepath.Join(dir, "wazero-cache")
	probeWasm, err = os.ReadFile(probe)
	return err
}

const testNamespace = "wktest"

// eventSink stands where containerd's ttrpc events service would: it records what the shim publishes.
type eventSink struct {
	mu     sync.Mutex
	events []*eventsapi.ForwardRequest
}

func (e *eventSink) Forward(_ context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, r)
	return &emptypb.Empty{}, nil
}

// topics returns "namespace topic" for every event received so far.
func (e *eventSink) topics() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, ev.GetEnvelope().GetNamespace()+" "+ev.GetEnvelope().GetTopic())
	}
	return out
}

// event waits for the first event with this topic and decodes it.
func (e *eventSink) event(t *testing.T, topic string) any {
	t.Helper()
	var found *eventsapi.ForwardRequest
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, ev := range e.events {
				if ev.GetEnvelope().GetTopic() == topic {
					found = ev
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		t.Fatalf("no %s event among %v: %v", topic, e.topics(), err)
	}
	v, err := typeurl.UnmarshalAny(found.GetEnvelope().GetEvent())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// shimProc is one shim server started like containerd starts it, and a ttrpc client for it.
type shimProc struct {
	task    taskapi.TTRPCTaskService
	ctx     context.Context // namespaced
	pid     int
	log     *testenv.Buffer // the shim's log FIFO
	events  *eventSink
	bundle  string
	address string
}

// dir returns a short private directory (unix socket paths must stay below 108 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "wk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// startShim runs `containerd-shim-wazero-v1 ... start` in bundle with the bootstrap parameters on
// stdin, as containerd 2.x does, and connects to the socket it reports.
func startShim(t *testing.T, bundle, id string) *shimProc {
	t.Helper()
	testenv.Integration(t)
	sockets := shortDir(t)
	sink := &eventSink{}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	eventsapi.RegisterTTRPCEventsService(srv, sink)
	eventsSock := filepath.Join(sockets, "events")
	l, err := net.Listen("unix", eventsSock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { _ = srv.Close() })

	// containerd creates the bundle's log FIFO and reads it; the shim server writes its log there.
	logPath := filepath.Join(bundle, "log")
	if err := syscall.Mkfifo(logPath, 0o600); err != nil {
		t.Fatal(err)
	}
	shimLog := &testenv.Buffer{}
	readFIFO(t, logPath, shimLog)

	socketDir := filepath.Join(sockets, "s")
	params, err := proto.Marshal(&bootapi.BootstrapParams{
		InstanceID:             id,
		Namespace:              testNamespace,
		ContainerdGrpcAddress:  filepath.Join(sockets, "containerd.sock"), // nothing listens: no image lookups
		ContainerdTtrpcAddress: eventsSock,
		SocketDir:              &socketDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shimBinary, "-namespace", testNamespace, "-id", id, "-address", filepath.Join(sockets, "containerd.sock"), "start")
	cmd.Dir = bundle
	cmd.Stdin = bytes.NewReader(params)
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+eventsSock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("shim start: %v\n%s", err, stderr.String())
	}
	var res bootapi.BootstrapResult
	if err := proto.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode the shim's bootstrap result %q: %v", out, err)
	}
	if res.GetVersion() != 3 || res.GetProtocol() != "ttrpc" || !strings.HasPrefix(res.GetAddress(), "unix://"+socketDir+"/") {
		t.Fatalf("bootstrap result %v", &res)
	}
	conn, err := shim.AnonDialer(res.GetAddress(), 10*time.Second)
	if err != nil {
		t.Fatalf("connect to the shim at %s: %v", res.GetAddress(), err)
	}
	client := ttrpc.NewClient(conn)
	p := &shimProc{
		task: taskapi.NewTTRPCTaskClient(client), ctx: namespaces.WithNamespace(context.Background(), testNamespace),
		log: shimLog, events: sink, bundle: bundle, address: res.GetAddress(),
	}
	c, err := p.task.Connect(p.ctx, &taskapi.ConnectRequest{ID: id})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	p.pid = int(c.GetShimPid())
	t.Cleanup(func() {
		_ = client.Close()
		if alive(p.pid) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("shim log:\n%s", shimLog.String())
		}
	})
	return p
}

// readFIFO opens the read end of a FIFO (without waiting for a writer) and copies it into w.
func readFIFO(t *testing.T, path string, w io.Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f, err := fifo.OpenFifo(ctx, path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(w, f)
	}()
	t.Cleanup(func() {
		cancel()
		f.Close()
		<-done
	})
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// newBundle writes an OCI bundle whose rootfs holds files (path -> content) and whose config.json is
// spec after edit.
func newBundle(t *testing.T, files map[string][]byte, edit func(*specs.Spec)) string {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for p, b := range files {
		full := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"/app.wasm"}, Env: []string{"PATH=/usr/bin"}, Cwd: "/"},
		Linux:   &specs.Linux{},
	}
	if edit != nil {
		edit(spec)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// stdio creates stdout and stderr FIFOs, read into buffers, as containerd's CRI plugin does.
type stdio struct {
	stdoutPath, stderrPath string
	stdout, stderr         *testenv.Buffer
}

func newStdio(t *testing.T) *stdio {
	t.Helper()
	dir := t.TempDir()
	s := &stdio{stdoutPath: filepath.Join(dir, "stdout"), stderrPath: filepath.Join(dir, "stderr"), stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}}
	readFIFO(t, s.stdoutPath, s.stdout)
	readFIFO(t, s.stderrPath, s.stderr)
	return s
}

// runtimeOptions encodes shim options the way containerd's CRI plugin passes a runtime's options table.
func runtimeOptions(t *testing.T, body string) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
