// Command manager runs the wasmkube controller: it rolls Shims out to nodes with one installer Job per
// node and publishes their RuntimeClasses. Run it with --help for its flags. The subcommands
// uninstall-shims and apply-crds are the Helm chart's pre-delete and pre-upgrade hooks (internal/lifecycle).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/version"
)

func main() {
	if err := run(ctrl.SetupSignalHandler(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		os.Exit(1)
	}
}

// config is the manager's configuration, filled from flags.
type config struct {
	controller.Options
	devLogs bool
	// version asks for the build information instead of a run.
	version bool
}

// parseFlags turns the command line into a config.
func parseFlags(args []string, errOut io.Writer) (config, error) {
	c := config{Options: controller.Options{Jobs: controller.DefaultJobConfig()}}
	fs := pflag.NewFlagSet("manager", pflag.ContinueOnError)
	fs.SetOutput(errOut)
	j := &c.Jobs
	fs.StringVar(&j.Image, "installer-image", "", "image of the node-installer the Jobs run (required)")
	fs.StringVar((*string)(&j.ImagePullPolicy), "installer-pull-policy", string(j.ImagePullPolicy), "pull policy of the installer image: Always, IfNotPresent or Never")
	fs.StringVar(&j.Namespace, "namespace", j.Namespace, "namespace of the installer Jobs, the leader-election Lease and the registry pull secrets")
	fs.Int32Var(&j.TTLSecondsAfterFinished, "job-ttl", j.TTLSecondsAfterFinished, "seconds a finished Job is kept (ttlSecondsAfterFinished)")
	fs.Int64Var(&j.ActiveDeadlineSeconds, "job-deadline", j.ActiveDeadlineSeconds, "seconds a Job may run (activeDeadlineSeconds)")
	fs.Int32Var(&j.BackoffLimit, "job-backoff-limit", j.BackoffLimit, "pod retries per Job (backoffLimit)")
	fs.StringVar((*string)(&j.Restart), "installer-restart", "", "override the installer's containerd restart method: systemd, signal or none (default: detected)")
	fs.StringVar(&j.ContainerdConfig, "installer-containerd-config", "", "override the containerd config path on nodes (default: detected)")
	fs.StringVar(&j.CRISocket, "installer-cri-socket", "", "override the CRI socket path on nodes (default: detected)")
	fs.StringVar(&j.ShimDir, "installer-shim-dir", "", "override the host directory of the shim binaries on nodes (default: the profile's)")
	fs.StringVar(&j.StateFile, "installer-state-file", "", "override the host path of the installer's state file on nodes; backups go beside it (default: the profile's)")
	installerConfig := fs.String("installer-config", "", "YAML or JSON file with the installer pods' tolerations and priorityClassName and per-node overrides (nodeOverrides) of the containerd config, CRI socket and restart method")
	fs.DurationVar(&c.HandlerDeadline, "handler-deadline", 2*time.Minute, "how long the kubelet may take to list a new handler in node.status.runtimeHandlers before the node counts as drifted (0 disables)")
	fs.DurationVar(&j.VerifyInterval, "verify-interval", j.VerifyInterval, "time between verify Jobs on a ready node whose runtime reports no handlers, for Shims without spec.verify.interval (0 disables)")
	fs.StringVar(&c.MetricsAddr, "metrics-bind-address", ":8080", "listen address of /metrics (0 disables)")
	fs.StringVar(&c.ProbeAddr, "health-probe-bind-address", ":8081", "listen address of /healthz and /readyz")
	fs.StringVar(&c.PprofAddr, "pprof-bind-address", "", "listen address of /debug/pprof (empty: off)")
	fs.BoolVar(&c.LeaderElection, "leader-elect", true, "run one active replica at a time (Lease in --namespace)")
	fs.BoolVar(&c.devLogs, "dev-logs", false, "human-readable logs instead of JSON")
	fs.BoolVar(&c.version, "version", false, "print the manager's version and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.version {
		return c, nil
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch j.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return c, fmt.Errorf("--installer-pull-policy %q: want Always, IfNotPresent or Never", j.ImagePullPolicy)
	}
	if j.Image == "" {
		return c, errors.New("--installer-image is required")
	}
	if j.Namespace == "" {
		return c, errors.New("--namespace must not be empty")
	}
	if j.VerifyInterval < 0 {
		return c, fmt.Errorf("--verify-interval %s: want 0 (off) or a positive duration", j.VerifyInterval)
	}
	if j.Restart != "" {
		if _, err := installerapi.ParseRestartMethod(string(j.Restart)); err != nil {
			return c, fmt.Errorf("--installer-restart: %w", err)
		}
	}
	if *installerConfig != "" {
		ic, err := controller.LoadInstallerConfig(*installerConfig)
		if err != nil {
			return c, fmt.Errorf("--installer-config: %w", err)
		}
		j.Apply(ic)
	}
	return c, nil
}

func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	if len(args) > 0 {
		if hook, ok := hooks[args[0]]; ok {
			return hook(ctx, args[1:], out, errOut)
		}
	}
	c, err := parseFlags(args, errOut)
	if err != nil {
		return err
	}
	if c.version {
		_, err := fmt.Fprintf(out, "manager %s\n", version.Get())
		return err
	}
	var h slog.Handler = slog.NewJSONHandler(errOut, nil)
	if c.devLogs {
		h = slog.NewTextHandler(errOut, nil)
	}
	ctrl.SetLogger(logr.FromSlogHandler(h))
	c.Registry = metrics.Registry
	// Request latency by verb: how long the API server takes to answer the manager's writes.
	metrics.RegisterRESTClientMetrics(metrics.MetricRequestLatency)
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := controller.NewManager(restCfg, c.Options)
	if err != nil {
		return err
	}
	ctrl.Log.Info("starting manager", "namespace", c.Jobs.Namespace, "installerImage", c.Jobs.Image,
		"installerNodeOverrides", len(c.Jobs.NodeOverrides))
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
