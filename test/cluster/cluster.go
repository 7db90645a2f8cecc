package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// Errors callers branch on (wrapped; test with errors.Is).
var (
	// ErrExists: the work directory already holds a cluster (or other files).
	ErrExists = errors.New("work directory in use")
	// ErrNotFound: the work directory holds no cluster.
	ErrNotFound = errors.New("no cluster in work directory")
)

// State is what a cluster records in its work directory (Layout.State), so that Down and Status
// work from another process.
type State struct {
	// Config is the completed configuration the cluster was started with.
	Config Config `json:"config"`
	// Network is the cluster's slot: addresses, bridge, chain, cgroup root, ports.
	Network Network `json:"network"`
	// Processes are the started processes, in start order.
	Processes []Process `json:"processes"`
	// StartedAt is when Up began.
	StartedAt time.Time `json:"startedAt"`
}

// Cluster is a local single-node cluster started by Up or found by Load. Its methods are not safe
// for concurrent use.
type Cluster struct {
	layout Layout
	state  State
}

// Up starts a cluster as cfg describes and returns once the node is Ready, the default
// ServiceAccount exists and the controller manager and scheduler answer their health checks; ctx
// bounds the whole start. On failure everything started so far is torn down again and the error
// carries the tails of the components' logs.
func Up(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	l := Layout{WorkDir: cfg.WorkDir}
	if err := claimWorkDir(l); err != nil {
		return nil, err
	}
	c := &Cluster{layout: l, state: State{Config: cfg, StartedAt: time.Now()}}
	if err := c.up(ctx); err != nil {
		serr := &StartError{State: c.state, Err: err, Logs: c.logTails()}
		serr.Cleanup = c.Down(context.WithoutCancel(ctx))
		return nil, serr
	}
	return c, nil
}

// StartError is Up's error when the cluster did not come up. What had been started is torn down
// again (unless Cleanup says that failed too).
type StartError struct {
	// State is what had been started.
	State State
	// Err is why the start failed.
	Err error
	// Cleanup is why tearing down what had been started failed, or nil.
	Cleanup error
	// Logs are the tails of the started components' logs.
	Logs string
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("start local cluster in %s: %v", e.State.Config.WorkDir, e.Err)
	if e.Cleanup != nil {
		msg += fmt.Sprintf("\nclean up after the failed start: %v", e.Cleanup)
	}
	return msg + e.Logs
}

func (e *StartError) Unwrap() error { return e.Err }

// claimWorkDir creates the work directory, which must not exist or be empty.
func claimWorkDir(l Layout) error {
	entries, err := os.ReadDir(l.WorkDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("check work directory %s: %w", l.WorkDir, err)
	case len(entries) > 0:
		if _, err := os.Stat(l.State()); err == nil {
			return fmt.Errorf("%w: %s holds a cluster; run `localcluster down` first", ErrExists, l.WorkDir)
		}
		return fmt.Errorf("%w: %s is not empty; choose another work directory", ErrExists, l.WorkDir)
	}
	if err := os.MkdirAll(l.Logs(), 0o755); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	return nil
}

// Load returns the cluster recorded in workDir.
func Load(workDir string) (*Cluster, error) {
	l := Layout{WorkDir: filepath.Clean(workDir)}
	b, err := os.ReadFile(l.State())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %s (no %s)", ErrNotFound, l.WorkDir, filepath.Base(l.State()))
	}
	if err != nil {
		return nil, fmt.Errorf("load cluster: %w", err)
	}
	c := &Cluster{layout: l}
	if err := json.Unmarshal(b, &c.state); err != nil {
		return nil, fmt.Errorf("load cluster: parse %s: %w", l.State(), err)
	}
	return c, nil
}

// save writes the state file atomically.
func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster state: %w", err)
	}
	tmp := c.layout.State() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if err := os.Rename(tmp, c.layout.State()); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

func (c *Cluster) progress(start time.Time, format string, args ...any) {
	if c.state.Config.Progress == nil {
		return
	}
	fmt.Fprintf(c.state.Config.Progress, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *Cluster) up(ctx context.Context) error {
	start := c.state.StartedAt
	cfg := &c.state.Config
	if cfg.NodeIP == "" {
		ip, err := defaultNodeIP()
		if err != nil {
			return err
		}
		cfg.NodeIP = ip
	}
	// The pause image may need a build; do it while the control plane starts.
	type built struct {
		path string
		err  error
	}
	pause := make(chan built, 1)
	go func() {
		p, err := containerdtest.PauseImageTarball(cfg.CacheDir)
		pause <- built{p, err}
	}()

	if err := c.claimSlot(ctx); err != nil {
		return err
	}
	n := c.state.Network
	c.progress(start, "slot %d: bridge %s, pods %s, services %s, apiserver https://%s:%d", n.Slot, n.Bridge, n.PodCIDR, n.ServiceCIDR, n.NodeIP, n.Ports.APIServer)
	if err := n.addServiceDNAT(); err != nil {
		return err
	}
	if err := c.writeFiles(); err != nil {
		return err
	}
	if err := createCgroupRoot(n.CgroupRoot); err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		argv []string
		env  []string
		log  string
	}{
		{Etcd, c.etcdArgs(), env(), c.layout.LogFile(Etcd)},
		{ContainerdSupervisor, c.supervisorArgs(), env(cfg.Binaries.ContainerdDir, filepath.Dir(cfg.Binaries.Runc)), c.layout.LogFile(containerdProcessName)},
		{APIServer, c.apiServerArgs(), env(), c.layout.LogFile(APIServer)},
	} {
		if err := c.start(p.name, p.argv, p.env, p.log); err != nil {
			return err
		}
	}

	if err := c.waitFor(ctx, "containerd to answer on "+c.layout.CRISocket(), func(ctx context.Context) (bool, error) {
		st, err := criStatus(ctx, c.layout.CRISocket())
		return err == nil && st.RuntimeReady, nil
	}); err != nil {
		return err
	}
	var tarball built
	select {
	case tarball = <-pause:
	case <-ctx.Done():
		return fmt.Errorf("build the pause image: %w", ctx.Err())
	}
	if tarball.err != nil {
		return fmt.Errorf("build the pause image: %w", tarball.err)
	}
	if err := c.ImportImage(ctx, tarball.path); err != nil {
		return err
	}
	c.progress(start, "containerd ready, %s imported", PauseImage)

	client, err := c.Clientset()
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "the apiserver to be ready", func(ctx context.Context) (bool, error) {
		_, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	}); err != nil {
		return err
	}
	c.progress(start, "etcd and kube-apiserver ready")

	for _, p := range []struct {
		name string
		argv []string
	}{
		{ControllerManager, c.controllerManagerArgs()},
		{Scheduler, c.schedulerArgs()},
	} {
		if err := c.start(p.name, p.argv, env(), c.layout.LogFile(p.name)); err != nil {
			return err
		}
	}
	if err := c.startKubelet(ctx); err != nil {
		return err
	}

	if err := c.waitFor(ctx, "node "+cfg.NodeName+" to be Ready", func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return err == nil && NodeReady(node), nil
	}); err != nil {
		return err
	}
	c.progress(start, "node %s Ready", cfg.NodeName)
	if err := c.waitFor(ctx, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return err
	}
	for _, h := range []struct {
		name string
		port int
	}{{ControllerManager, n.Ports.ControllerManager}, {Scheduler, n.Ports.Scheduler}} {
		if err := c.waitFor(ctx, h.name+" to be healthy", func(ctx context.Context) (bool, error) {
			return healthy(ctx, h.port), nil
		}); err != nil {
			return err
		}
	}
	c.progress(start, "cluster ready: export KUBECONFIG=%s", c.layout.Kubeconfig())
	return nil
}

// startKubelet starts the kubelet, first recording the host baseline if it is the only kubelet. It
// holds the host lock until the kubelet runs, so that a concurrent Down sees it.
func (c *Cluster) startKubelet(ctx context.Context) error {
	release, err := lockHost(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := recordBaseline(); err != nil {
		return err
	}
	return c.start(Kubelet, c.kubeletArgs(), env(filepath.Dir(c.state.Config.Binaries.Runc)), c.layout.LogFile(Kubelet))
}

// claimSlot picks a free slot under the host-wide lock, records it and creates its bridge (the claim).
func (c *Cluster) claimSlot(ctx context.Context) error {
	release, err := lockHost(ctx)
	if err != nil {
		return err
	}
	defer release()
	n, err := freeSlot(c.state.Config.NodeIP)
	if err != nil {
		return err
	}
	c.state.Network = n
	if err := c.save(); err != nil {
		return err
	}
	return n.createBridge()
}

// writeFiles writes certificates, kubeconfigs and the components' configuration files.
func (c *Cluster) writeFiles() error {
	l, n, node := c.layout, c.state.Network, c.state.Config.NodeName
	if err := writePKI(l.PKI(), node, n); err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", n.Ports.APIServer)
	for path, user := range map[string]string{
		l.Kubeconfig():                         "admin",
		c.pki("kubelet.kubeconfig"):            "kubelet",
		c.pki("controller-manager.kubeconfig"): "controller-manager",
		c.pki("scheduler.kubeconfig"):          "scheduler",
	} {
		if err := writeKubeconfig(path, server, l.PKI(), user); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Dir(l.ContainerdConfig()), l.ContainerdRoot(), l.ContainerdState(), l.CNIConfDir(),
		l.CNIDataDir(), l.KubeletRoot(), l.PodLogs(), l.VolumePluginDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	kubelet, err := c.kubeletConfig()
	if err != nil {
		return err
	}
	cni, err := c.cniConfig()
	if err != nil {
		return err
	}
	for path, content := range map[string][]byte{
		l.ContainerdConfig(): c.containerdConfig(),
		filepath.Join(l.CNIConfDir(), "10-wasmkube.conflist"): cni,
		l.KubeletConfig(): kubelet,
	} {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// start starts one component and records it.
func (c *Cluster) start(name string, argv, env []string, log string) error {
	p, err := startProcess(name, argv, env, log)
	if err != nil {
		return err
	}
	c.state.Processes = append(c.state.Processes, p)
	return c.save()
}

// waitFor polls cond until it holds, failing early when one of the started processes has exited.
func (c *Cluster) waitFor(ctx context.Context, what string, cond wait.ConditionWithContextFunc) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.state.Processes {
			if !p.Alive() {
				return false, fmt.Errorf("%s (PID %d) exited", p.Name, p.PID)
			}
		}
		return cond(ctx)
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

// logTails returns the end of every component's log, for a failed start.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, p := range c.state.Processes {
		fmt.Fprintf(&b, "\n--- %s log (%s) ---\n%s", p.Name, p.Log, p.tail(20))
	}
	return b.String()
}

// NodeReady reports whether node's Ready condition is True.
func NodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// SetProgress sets where Down reports its steps (Load leaves it unset); nil discards them.
func (c *Cluster) SetProgress(w io.Writer) { c.state.Config.Progress = w }

// Layout returns the cluster's file layout.
func (c *Cluster) Layout() Layout { return c.layout }

// State returns what the cluster recorded about itself.
func (c *Cluster) State() State { return c.state }

// NodeName returns the node's name.
func (c *Cluster) NodeName() string { return c.state.Config.NodeName }

// Kubeconfig returns the path of the admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.layout.Kubeconfig() }

// RESTConfig returns a client configuration for the admin kubeconfig.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.layout.Kubeconfig())
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", c.layout.Kubeconfig(), err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// Clientset returns a typed client for the admin kubeconfig.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client for %s: %w", c.layout.Kubeconfig(), err)
	}
	return cs, nil
}

// Process returns the recorded process of a component (Etcd, APIServer, Kubelet, ...).
func (c *Cluster) Process(name string) (Process, bool) {
	i := slices.IndexFunc(c.state.Processes, func(p Process) bool { return p.Name == name })
	if i < 0 {
		return Process{}, false
	}
	return c.state.Processes[i], true
}

// ContainerdProcesses returns the live containerd processes running this cluster's config: one
// while the cluster runs, none for a moment while its supervisor restarts it.
func (c *Cluster) ContainerdProcesses() ([]restart.Process, error) {
	procs, err := restart.Processes("/proc")
	if err != nil {
		return nil, err
	}
	want := c.containerdArgs()
	var found []restart.Process
	for _, p := range procs {
		if p.Comm == containerdProcessName && !p.Zombie() && slices.Equal(p.Args, want) {
			found = append(found, p)
		}
	}
	return found, nil
}

// ImportImage imports an image tarball (docker save or OCI layout) into containerd's k8s.io
// namespace with ctr, where the kubelet finds it (pods need imagePullPolicy Never or IfNotPresent).
// extraArgs go to `ctr images import` before the file, e.g. "--platform", "wasi/wasm".
func (c *Cluster) ImportImage(ctx context.Context, tarball string, extraArgs ...string) error {
	ctr := filepath.Join(c.state.Config.Binaries.ContainerdDir, "ctr")
	args := append([]string{"--address", c.layout.CRISocket(), "--namespace", "k8s.io", "images", "import", "--local"}, extraArgs...)
	args = append(args, tarball)
	out, err := exec.CommandContext(ctx, ctr, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import image %s: %s %s: %w: %s", tarball, ctr, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// criStatus asks containerd's CRI for its status.
func criStatus(ctx context.Context, socket string) (*cri.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client, err := cri.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	return client.Status(ctx)
}
