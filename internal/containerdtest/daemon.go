package containerdtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// Timeouts of the harness: generous, because CI machines are slow and shared.
const (
	// ReadyTimeout bounds waiting for a (re)started daemon to answer CRI Status with RuntimeReady.
	ReadyTimeout = 60 * time.Second
	// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	StopGrace = 10 * time.Second
	// minBackoff and maxBackoff bound the supervisor's pause before starting an exited daemon again;
	// the pause doubles while the daemon keeps failing within a second of its start.
	minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
)

// Options configure a Daemon.
type Options struct {
	// Version selects containerd 1.6 (V1) or 2.4.2 (V2). Required.
	Version Version
	// HostRoot, if set, makes the daemon's config HostRoot/etc/containerd/config.toml and its root
	// HostRoot/var/lib/containerd, mimicking a node for the installer. The socket stays in a short dir;
	// HostRoot/run/containerd/containerd.sock is a symlink to it.
	HostRoot string
	// Paths are the daemon's private paths; nil allocates them with NewPaths(t, HostRoot).
	Paths *Paths
	// Config is written to Paths.Config before the first start; nil writes DefaultConfig.
	Config []byte
	// Supervise restarts the daemon whenever it exits (like k3d's or our local cluster's containerd);
	// this is what the `signal` restart strategy relies on.
	Supervise bool
	// ExtraPath directories come first on the daemon's PATH (containerd 1.6 finds shims only there,
	// it ignores runtime_path).
	ExtraPath []string
}

// Daemon is a running containerd on private paths. Methods that can fail (Restart, Stop, WaitReady,
// RunPod, Client) fail the test and so belong on the test's goroutine; the accessors (PID, Restarts,
// Logs, Socket, ...) are safe from any goroutine.
type Daemon struct {
	t       testing.TB
	version Version
	paths   Paths
	binary  string
	ctr     string
	env     []string
	log     *os.File
	wg      sync.WaitGroup

	supervised bool // Options.Supervise

	mu       sync.Mutex
	cur      *proc // the current (or last) process
	stopped  bool  // Stop was called: the supervisor leaves the daemon down
	restarts int
	startErr error // the supervisor's last failure to start the daemon
}

// proc is one containerd process.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	backoff time.Duration // the supervisor's pause before this start
	exited  chan struct{} // closed once the process has exited and been reaped
}

// Start writes the config and starts containerd, waits until its CRI socket reports RuntimeReady
// (failing the test with the daemon's log if it does not), and imports PauseImage. Everything is
// torn down by t.Cleanup: pod sandboxes are removed, the daemon is stopped, leftover shims are
// killed, mounts, the bridge and files are removed. Under -short it skips t.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	d := &Daemon{t: t, version: o.Version, supervised: o.Supervise}
	binDirs := append([]string(nil), o.ExtraPath...)
	switch o.Version {
	case V1:
		d.binary = testenv.Containerd1(t)
		d.ctr = filepath.Join(filepath.Dir(d.binary), "ctr")
		binDirs = append(binDirs, filepath.Dir(d.binary))
	case V2:
		dir := testenv.Containerd2Dir(t)
		d.binary, d.ctr = filepath.Join(dir, "containerd"), filepath.Join(dir, "ctr")
		// containerd 2.x must find its own containerd-shim-runc-v2 before Debian's 1.6 one.
		binDirs = append(binDirs, dir)
	default:
		t.Fatalf("containerdtest.Start: unknown containerd version %d (want V1 or V2)", o.Version)
	}
	if o.Paths != nil {
		d.paths = *o.Paths
	} else {
		d.paths = NewPaths(t, o.HostRoot)
	}
	pause := Build(t, pausePackage)
	image, err := pauseTarball(pause)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.Config
	if cfg == nil {
		cfg = DefaultConfig(o.Version, d.paths)
	}
	if err := os.WriteFile(d.paths.Config, cfg, 0o644); err != nil {
		t.Fatalf("write containerd config: %v", err)
	}
	if d.paths.HostRoot != "" {
		linkSocket(t, d.paths.HostRoot, d.paths.Socket)
	}
	binDirs = append(binDirs, filepath.Dir(d.paths.Runc), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	d.env = append(withoutPATH(os.Environ()), "PATH="+strings.Join(binDirs, string(os.PathListSeparator)))
	if d.log, err = os.OpenFile(d.paths.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatalf("open containerd log: %v", err)
	}
	t.Cleanup(d.cleanup)

	d.mu.Lock()
	p, err := d.launchLocked(0)
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	d.waitReady(p)
	d.ImportImage(image, PauseImage)
	return d
}

// linkSocket makes hostRoot/run/containerd/containerd.sock a symlink to the daemon's short socket, as
// on a node. Connecting through it works only while that path is shorter than 108 bytes; pass Socket()
// explicitly otherwise.
func linkSocket(t testing.TB, hostRoot, socket string) {
	t.Helper()
	link := filepath.Join(hostRoot, "run", "containerd", "containerd.sock")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatalf("create socket link: %v", err)
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("create socket link: %v", err)
	}
	if err := os.Symlink(socket, link); err != nil {
		t.Fatalf("create socket link: %v", err)
	}
}

// Socket returns the CRI (gRPC) socket path.
func (d *Daemon) Socket() string { return d.paths.Socket }

// ConfigPath returns the path of the config file the daemon loads.
func (d *Daemon) ConfigPath() string { return d.paths.Config }

// Paths returns the daemon's private paths.
func (d *Daemon) Paths() Paths { return d.paths }

// Version returns which containerd runs.
func (d *Daemon) Version() Version { return d.version }

// PID returns the PID of the current containerd process, or 0 while none runs.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil || isClosed(d.cur.exited) {
		return 0
	}
	return d.cur.cmd.Process.Pid
}

// Restarts returns how many times the daemon was started again after its first start (by the
// supervisor or by Restart).
func (d *Daemon) Restarts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.restarts
}

// Logs returns everything the daemon wrote so far (all its processes).
func (d *Daemon) Logs() string {
	b, err := os.ReadFile(d.paths.Log)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", d.paths.Log, err)
	}
	return string(b)
}

// Client returns a CRI client for the daemon, closed by t.Cleanup.
func (d *Daemon) Client() *cri.Client {
	d.t.Helper()
	c, err := cri.Dial(context.Background(), d.paths.Socket)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

// WaitReady waits until the CRI socket reports RuntimeReady and the handler listed (present) or not
// (!present); handler "" checks RuntimeReady only. It fails the test on timeout (ReadyTimeout).
func (d *Daemon) WaitReady(handler string, present bool) *cri.Status {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	st, err := cri.WaitReady(ctx, d.paths.Socket, handler, present)
	if err != nil {
		d.t.Fatalf("%v\n%s", err, d.logTail())
	}
	return st
}

// Stop stops the daemon for good: supervision ends, SIGTERM, SIGKILL after StopGrace. Idempotent.
func (d *Daemon) Stop() {
	d.t.Helper()
	d.mu.Lock()
	d.stopped = true
	p := d.cur
	d.mu.Unlock()
	if err := terminate(p); err != nil {
		d.t.Error(err)
	}
}

// Restart restarts the daemon and waits until it answers again. A supervised daemon is sent SIGTERM
// and its supervisor starts it again (the `signal` path); an unsupervised or stopped one is stopped and
// started by Restart itself. Supervision, if it was set in Options, continues.
func (d *Daemon) Restart() {
	d.t.Helper()
	d.mu.Lock()
	old, signal := d.cur, d.supervised && !d.stopped
	d.mu.Unlock()
	if signal && old != nil && !isClosed(old.exited) {
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			d.t.Fatalf("signal containerd PID %d: %v", old.cmd.Process.Pid, err)
		}
		var next *proc
		err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, ReadyTimeout, true, func(context.Context) (bool, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			next = d.cur
			return next != old, nil
		})
		if err != nil {
			d.t.Fatalf("supervisor did not start containerd again after SIGTERM: %v\n%s", d.startErrOr(err), d.logTail())
		}
		d.waitReady(next)
		return
	}
	if err := terminate(old); err != nil {
		d.t.Fatal(err)
	}
	d.mu.Lock()
	d.stopped = false
	p, err := d.launchLocked(0)
	if err == nil {
		d.restarts++
	}
	d.mu.Unlock()
	if err != nil {
		d.t.Fatal(err)
	}
	d.waitReady(p)
}

// launchLocked starts a containerd process after the supervisor's pause backoff; d.mu is held.
func (d *Daemon) launchLocked(backoff time.Duration) (*proc, error) {
	fmt.Fprintf(d.log, "--- containerdtest: %s start at %s ---\n", d.binary, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.binary, "--config", d.paths.Config)
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = d.log, d.log
	// A session of its own, like a system daemon: signals to the test's process group do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s --config %s: %w", d.binary, d.paths.Config, err)
	}
	p := &proc{cmd: cmd, started: time.Now(), backoff: backoff, exited: make(chan struct{})}
	d.cur = p
	d.wg.Add(1)
	go d.reap(p)
	return p, nil
}

// reap waits for p (so it never lingers as a zombie) and, when the daemon is supervised and p is still
// the current process, starts containerd again after a short back-off, which grows while the daemon
// keeps failing right after its start (a broken config). containerd exits 0 on SIGTERM, so signal
// restarts always get the short back-off.
func (d *Daemon) reap(p *proc) {
	defer d.wg.Done()
	_ = p.cmd.Wait() // the exit status is in ProcessState and the log
	close(p.exited)
	delay := minBackoff
	if !p.cmd.ProcessState.Success() && time.Since(p.started) < time.Second {
		delay = min(max(2*p.backoff, minBackoff), maxBackoff)
	}
	for {
		time.Sleep(delay)
		d.mu.Lock()
		if !d.supervised || d.stopped || d.cur != p {
			d.mu.Unlock()
			return
		}
		_, err := d.launchLocked(delay)
		if err == nil {
			d.restarts++
			d.startErr = nil
			d.mu.Unlock()
			return // the new process has a reaper of its own
		}
		d.startErr = err
		d.mu.Unlock()
		delay = min(2*delay, maxBackoff)
	}
}

// waitReady waits until the CRI socket reports RuntimeReady, failing the test with the log tail if it
// does not. An unsupervised daemon that exits meanwhile fails at once.
func (d *Daemon) waitReady(p *proc) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if !d.supervised {
		go func() {
			select {
			case <-p.exited:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	if _, err := cri.WaitReady(ctx, d.paths.Socket, "", true); err != nil {
		state := "running"
		if isClosed(p.exited) {
			state = "exited: " + p.cmd.ProcessState.String()
		}
		d.t.Fatalf("containerd %s (PID %d, %s) did not become ready: %v\n%s", d.version, p.cmd.Process.Pid, state, d.startErrOr(err), d.logTail())
	}
}

// Ctr runs the ctr matching the daemon's version against its socket in the k8s.io namespace (the one
// CRI uses) and returns its combined output; the error keeps the arguments and the output.
func (d *Daemon) Ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ReadyTimeout)
	defer cancel()
	full := append([]string{"--address", d.paths.Socket, "--namespace", "k8s.io"}, args...)
	out, err := exec.CommandContext(ctx, d.ctr, full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", d.ctr, strings.Join(full, " "), err, out)
	}
	return string(out), nil
}

// ImportImage imports an image tarball (`docker save` or OCI layout format, as `ctr images import`
// reads) with extra ctr import flags, and waits until the CRI image service resolves ref.
func (d *Daemon) ImportImage(tarball, ref string, flags ...string) {
	d.t.Helper()
	args := append([]string{"images", "import"}, flags...)
	if d.version == V2 {
		args = append(args, "--local") // unpack in the client, as 1.6's ctr does; no transfer service
	}
	if _, err := d.Ctr(append(args, tarball)...); err != nil {
		d.t.Fatal(err)
	}
	c, err := cri.Dial(context.Background(), d.paths.Socket)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	var last error
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, ReadyTimeout, true, func(ctx context.Context) (bool, error) {
		resp, err := c.Images().ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		last = err
		return err == nil && resp.GetImage() != nil, nil
	})
	if err != nil {
		d.t.Fatalf("CRI does not list %s after ctr import: %v (last error: %v)\n%s", ref, err, last, d.logTail())
	}
}

// cleanup removes pod sandboxes, stops the daemon and kills shims left behind.
func (d *Daemon) cleanup() {
	if d.t.Failed() {
		d.t.Logf("containerd %s log %s:\n%s", d.version, d.paths.Log, d.logTail())
	}
	if d.PID() != 0 {
		if err := d.removePods(); err != nil {
			d.t.Errorf("clean up pod sandboxes of containerd %s: %v", d.version, err)
		}
	}
	d.Stop()
	if err := deleteContainers(d.paths.Runc, d.paths.RuncRoot); err != nil {
		d.t.Errorf("clean up containers of containerd %s: %v", d.version, err)
	}
	if err := killShims(d.paths.Socket); err != nil {
		d.t.Errorf("kill shims of containerd %s: %v", d.version, err)
	}
	d.wg.Wait()
	d.log.Close()
}

// removePods stops and removes every pod sandbox (and so its containers) through CRI.
func (d *Daemon) removePods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ReadyTimeout)
	defer cancel()
	c, err := cri.Dial(ctx, d.paths.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	rt := c.Runtime()
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range resp.GetItems() {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod sandbox %s: %w", sb.GetId(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod sandbox %s: %w", sb.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

// deleteContainers force-deletes every container runc still knows under the daemon's runc root (one
// directory per namespace): its processes and cgroups go. After a clean removal of the pods there are
// none; this catches a test that stopped the daemon with pods running or failed halfway.
func deleteContainers(runc, runcRoot string) error {
	namespaces, err := os.ReadDir(runcRoot)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, ns := range namespaces {
		root := filepath.Join(runcRoot, ns.Name())
		ids, err := os.ReadDir(root)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			if out, err := exec.Command(runc, "--root", root, "delete", "--force", id.Name()).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("runc --root %s delete --force %s: %w: %s", root, id.Name(), err, out))
			}
		}
	}
	return errors.Join(errs...)
}

// killShims kills the shims serving the daemon at socket (their command line says `-address socket`)
// and everything below them, waits until they are gone, and removes their sockets, which containerd
// keeps in /run/containerd/s whatever its state dir.
func killShims(socket string) error {
	procs, err := restart.Processes("/proc")
	if err != nil {
		return err
	}
	children := map[int][]int{}
	var victims []int
	var sockets []string
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p.PID)
		if flag(p.Args, "address") == socket {
			victims = append(victims, p.PID)
			ns, id := flag(p.Args, "namespace"), flag(p.Args, "id")
			sockets = append(sockets, ShimSocket(socket, ns, id), ShimSocket(socket, ns, id, "debug"))
		}
	}
	for i := 0; i < len(victims); i++ {
		victims = append(victims, children[victims[i]]...)
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, StopGrace, true, func(context.Context) (bool, error) {
		for _, pid := range victims {
			if p, err := restart.ReadProcess("/proc", pid); err == nil && !p.Zombie() {
				return false, nil
			}
		}
		return true, nil
	})
	for _, s := range sockets {
		_ = os.Remove(s)
	}
	return err
}

// flag returns the value of "-name value" (or --name) in args, or "".
func flag(args []string, name string) string {
	for i, a := range args {
		if (a == "-"+name || a == "--"+name) && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// ShimSocket is where containerd (1.6 and 2.x alike) puts the socket of the shim serving container id
// of namespace ns for the daemon at socket: /run/containerd/s/<sha256 of socket/ns/id>, whatever its
// state dir (with a trailing "debug" element: the shim's debug socket).
func ShimSocket(socket, ns, id string, debug ...string) string {
	path := filepath.Join(append([]string{socket, ns, id}, debug...)...)
	return fmt.Sprintf("/run/containerd/s/%x", sha256.Sum256([]byte(path)))
}

// terminate sends p SIGTERM, then SIGKILL after StopGrace, and waits until it has been reaped.
func terminate(p *proc) error {
	if p == nil || isClosed(p.exited) {
		return nil
	}
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop containerd PID %d: %w", pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(StopGrace):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		return nil
	case <-time.After(StopGrace):
		return fmt.Errorf("containerd PID %d did not exit after SIGKILL", pid)
	}
}

func (d *Daemon) startErrOr(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.startErr != nil {
		return fmt.Errorf("%w (last start attempt: %v)", err, d.startErr)
	}
	return err
}

// logTail returns the last lines of the daemon's log, for failure messages.
func (d *Daemon) logTail() string {
	const keep = 80
	lines := strings.Split(strings.TrimRight(d.Logs(), "\n"), "\n")
	if len(lines) > keep {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-keep, d.paths.Log)}, lines[len(lines)-keep:]...)
	}
	return "--- containerd log ---\n" + strings.Join(lines, "\n")
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func withoutPATH(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "PATH=") {
			out = append(out, e)
		}
	}
	return out
}
