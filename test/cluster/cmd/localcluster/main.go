// Command localcluster starts and stops a real single-node Kubernetes cluster on this machine (see
// package test/cluster): `localcluster up`, `status`, `kubeconfig`, `down`. The binaries come from
// flags or the WASMKUBE_* variables that `hack/tools.sh env` prints, so
// `hack/tools.sh exec -- go run ./test/cluster/cmd/localcluster up` needs no flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/test/cluster"
)

// defaultWorkDir is short enough for the unix sockets below it.
const defaultWorkDir = "/tmp/wasmkube-cluster"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Dispatch(ctx, "localcluster", commands(), os.Args[1:], os.LookupEnv,
		cli.Streams{Out: os.Stdout, ErrOut: os.Stderr})
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
	default:
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}

func commands() []cli.Command {
	return []cli.Command{
		{Name: "up", Short: "start the cluster and wait until its node is Ready", Run: up},
		{Name: "down", Short: "stop the cluster and remove everything it created", Run: down},
		{Name: "status", Short: "show the cluster's processes and node (exit 1 when unhealthy)", Run: status},
		{Name: "kubeconfig", Short: "print the path of the cluster's admin kubeconfig", Run: kubeconfig},
	}
}

// workDirFlag adds --work-dir to fs.
func workDirFlag(fs *pflag.FlagSet) *string {
	return fs.String("work-dir", defaultWorkDir, "directory holding all of the cluster's state (at most 52 bytes)")
}

// loadCluster parses a subcommand that takes only --work-dir and loads the cluster there. It returns the
// work directory also when loading fails.
func loadCluster(name string, args []string, env cli.LookupEnv) (*cluster.Cluster, string, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	workDir := workDirFlag(fs)
	if err := cli.Parse(fs, args, env); err != nil {
		return nil, *workDir, err
	}
	c, err := cluster.Load(*workDir)
	return c, *workDir, err
}

func up(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	var cfg cluster.Config
	var cacheRoot string
	timeout := fs.Duration("timeout", 5*time.Minute, "give up (and tear down) when the cluster is not ready by then")
	fs.StringVar(&cfg.WorkDir, "work-dir", defaultWorkDir, "directory holding all of the cluster's state (at most 52 bytes)")
	fs.StringVar(&cfg.Binaries.KubeDir, "kube-dir", "", "directory with kube-apiserver, kube-controller-manager, kube-scheduler and kubelet")
	fs.StringVar(&cfg.Binaries.Etcd, "etcd", "", "etcd binary")
	fs.StringVar(&cfg.Binaries.ContainerdDir, "containerd2-dir", "", "directory with containerd 2.x, ctr and containerd-shim-runc-v2")
	fs.StringVar(&cfg.Binaries.Runc, "runc", "", "runc binary")
	fs.StringVar(&cfg.Binaries.CNIDir, "cni-dir", "", "directory with the CNI plugins bridge, host-local and loopback")
	fs.StringVar(&cacheRoot, "cache-dir", "", "tool cache root; the pause image is built into its testbin directory")
	fs.StringVar(&cfg.NodeName, "node-name", cluster.DefaultNodeName, "name of the node")
	fs.StringVar(&cfg.NodeIP, "node-ip", "", "the node's IPv4 address (default: the address of the default route's interface)")
	fs.IntVar(&cfg.ContainerdConfigVersion, "containerd-config-version", cluster.DefaultContainerdConfigVersion, "containerd config file version to write: 2, 3 or 4")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if cacheRoot != "" {
		cfg.CacheDir = filepath.Join(cacheRoot, "testbin")
	}
	cfg.Progress = streams.ErrOut
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := cluster.Up(ctx, cfg)
	if errors.Is(err, cluster.ErrInvalidConfig) {
		return fmt.Errorf("%w\n(the binary flags default to the WASMKUBE_* variables that `hack/tools.sh env` prints: run `make cluster-up`)", err)
	}
	if err != nil {
		return err
	}
	st := c.State()
	fmt.Fprintf(streams.Out, "Cluster up in %s (node %s, %s).\n", st.Config.WorkDir, st.Config.NodeName, time.Since(st.StartedAt).Round(100*time.Millisecond))
	fmt.Fprintf(streams.Out, "  export KUBECONFIG=%s\n", c.Kubeconfig())
	fmt.Fprintf(streams.Out, "  containerd config %s, CRI socket %s\n", c.Layout().ContainerdConfig(), c.Layout().CRISocket())
	fmt.Fprintf(streams.Out, "  logs in %s; stop with: localcluster down --work-dir %s\n", c.Layout().Logs(), st.Config.WorkDir)
	return nil
}

func down(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	c, workDir, err := loadCluster("down", args, env)
	if errors.Is(err, cluster.ErrNotFound) {
		fmt.Fprintf(streams.ErrOut, "no cluster in %s: nothing to do\n", workDir)
		return nil
	}
	if err != nil {
		return err
	}
	c.SetProgress(streams.ErrOut)
	start := time.Now()
	if err := c.Down(ctx); err != nil {
		return err
	}
	fmt.Fprintf(streams.Out, "Cluster in %s removed (%s).\n", workDir, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func status(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	c, workDir, err := loadCluster("status", args, env)
	if err != nil {
		return err
	}
	s := c.Status(ctx)
	w := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COMPONENT\tPID\tSTATE")
	for _, p := range s.Components {
		state := "running"
		if !p.Running {
			state = "NOT RUNNING"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\n", p.Name, p.PID, state)
	}
	apiserver := "ready"
	if s.APIServer != nil {
		apiserver = s.APIServer.Error()
	}
	fmt.Fprintf(w, "\napiserver\t%s\n", apiserver)
	fmt.Fprintf(w, "node %s\tReady=%t runtimeHandlers=%q\n", c.NodeName(), s.NodeReady, s.RuntimeHandlers)
	if err := w.Flush(); err != nil {
		return err
	}
	if !s.Healthy() {
		return fmt.Errorf("cluster in %s is not healthy", workDir)
	}
	return nil
}

func kubeconfig(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	c, _, err := loadCluster("kubeconfig", args, env)
	if err != nil {
		return err
	}
	fmt.Fprintln(streams.Out, c.Kubeconfig())
	return nil
}
