package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/internal/lifecycle"
)

// hooks are the manager's subcommands for the Helm chart's hooks (internal/lifecycle).
var hooks = map[string]func(ctx context.Context, args []string, out, errOut io.Writer) error{
	"uninstall-shims": runUninstallShims,
	"apply-crds":      runApplyCRDs,
}

// runUninstallShims is `manager uninstall-shims`, the chart's pre-delete hook.
func runUninstallShims(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := pflag.NewFlagSet("manager uninstall-shims", pflag.ContinueOnError)
	fs.SetOutput(errOut)
	timeout := fs.Duration("timeout", 4*time.Minute, "how long to wait for the manager to uninstall every Shim")
	if err := parseHookFlags(fs, args); err != nil {
		return err
	}
	c, err := hookClient()
	if err != nil {
		return err
	}
	return lifecycle.DeleteShims(ctx, c, lifecycle.DeleteOptions{Timeout: *timeout, Out: out})
}

// runApplyCRDs is `manager apply-crds`, the chart's pre-upgrade hook.
func runApplyCRDs(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := pflag.NewFlagSet("manager apply-crds", pflag.ContinueOnError)
	fs.SetOutput(errOut)
	dir := fs.String("dir", "/crds", "directory holding the CustomResourceDefinitions to apply (*.yaml)")
	if err := parseHookFlags(fs, args); err != nil {
		return err
	}
	c, err := hookClient()
	if err != nil {
		return err
	}
	return lifecycle.ApplyCRDs(ctx, c, *dir, out)
}

func parseHookFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

// hookClient is an uncached client with the manager's scheme and CustomResourceDefinitions.
func hookClient() (client.Client, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	scheme, err := lifecycle.NewScheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}
