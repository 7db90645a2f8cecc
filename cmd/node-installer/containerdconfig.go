package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
)

// containerdConfigCommand is `node-installer containerd-config`: it prints a containerd config file with
// a runtime added or removed (see pkg/containerdcfg), without writing anything.
func containerdConfigCommand() cli.Command {
	subcommands := []cli.Command{
		{Name: "add", Short: "Print the config with the runtime added or updated in wasmkube's managed block", Run: runContainerdConfigAdd},
		{Name: "remove", Short: "Print the config without wasmkube's block for the handler", Run: runContainerdConfigRemove},
		{Name: "version", Short: "Print the config version (1-4)", Run: runContainerdConfigVersion},
		{Name: "drop-in", Short: "Print a stand-alone drop-in file holding only the runtime", Run: runContainerdConfigDropIn},
	}
	return cli.Command{
		Name:  "containerd-config",
		Short: "Print a containerd config with a runtime added or removed (add | remove | version | drop-in)",
		Run: func(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
			return cli.Dispatch(ctx, "node-installer containerd-config", subcommands, args, env, streams)
		},
	}
}

func bindConfigFile(fs *pflag.FlagSet, c *nodeinstaller.ConfigFile, handler bool) {
	fs.StringVar(&c.File, "file", "", "containerd config file (or template) to read")
	fs.IntVar(&c.DefaultVersion, "default-version", 0, "config version to assume when the file declares none (k3s/rke2 templates: 2 for config.toml.tmpl, 3 for config-v3.toml.tmpl)")
	if handler {
		bindHandler(fs, &c.Handler)
	}
}

func bindHandler(fs *pflag.FlagSet, handler *string) {
	fs.StringVar(handler, "handler", "", "runtime name, the RuntimeClass handler (e.g. wazero)")
}

func bindRuntime(fs *pflag.FlagSet, d *nodeinstaller.RuntimeDef) {
	fs.StringVar(&d.Type, "runtime-type", "", "containerd runtime_type (e.g. io.containerd.wazero.v1)")
	fs.StringVar(&d.Path, "runtime-path", "", "runtime_path, the shim binary (omitted when empty)")
	fs.StringArrayVar(&d.Options, "option", nil, `runtime option key=value (repeatable): a TOML value (true/false, integers, floats, "strings", ["arrays", "of strings"]) or else a plain string`)
}

func runContainerdConfigAdd(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		c nodeinstaller.ConfigFile
		d nodeinstaller.RuntimeDef
		a nodeinstaller.AddRuntime
	)
	fs := newFlagSet("containerd-config add", streams)
	bindConfigFile(fs, &c, true)
	bindRuntime(fs, &d)
	fs.BoolVar(&a.Adopt, "adopt", false, "take over a same-named runtime wasmkube did not write (its lines are commented out and restored by remove)")
	fs.StringVar(&a.ContainerdVersion, "containerd-version", "", "version of the containerd that reads the file: its major version (1, 2) or a release (1.6.20, v2.1.5, containerd://2.1.5-k3s1); decides where the runtime goes")
	fs.BoolVar(&a.Containerd2Only, "containerd2-only", false, "only containerd 2.x reads this file (the same as --containerd-version 2)")
	if err := parse(fs, "", args, env); err != nil {
		return err
	}
	return nodeinstaller.PrintAdded(c, d, a, streams.Out)
}

func runContainerdConfigRemove(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var c nodeinstaller.ConfigFile
	fs := newFlagSet("containerd-config remove", streams)
	bindConfigFile(fs, &c, true)
	if err := parse(fs, "", args, env); err != nil {
		return err
	}
	return nodeinstaller.PrintRemoved(c, streams.Out)
}

func runContainerdConfigVersion(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var c nodeinstaller.ConfigFile
	fs := newFlagSet("containerd-config version", streams)
	bindConfigFile(fs, &c, false)
	if err := parse(fs, "", args, env); err != nil {
		return err
	}
	return nodeinstaller.PrintVersion(c, streams.Out)
}

func runContainerdConfigDropIn(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		d       nodeinstaller.RuntimeDef
		handler string
		version int
	)
	fs := newFlagSet("containerd-config drop-in", streams)
	bindHandler(fs, &handler)
	fs.IntVar(&version, "config-version", 3, "config version of the drop-in file (2, 3 or 4; containerd 2.x only)")
	bindRuntime(fs, &d)
	if err := parse(fs, "", args, env); err != nil {
		return err
	}
	return nodeinstaller.PrintDropIn(handler, version, d, streams.Out)
}
