package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
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

// configFlags are the flags shared by the subcommands that read a config file.
type configFlags struct {
	file           string
	handler        string
	defaultVersion int
}

func (f *configFlags) bind(fs *pflag.FlagSet, handler bool) {
	fs.StringVar(&f.file, "file", "", "containerd config file (or template) to read")
	fs.IntVar(&f.defaultVersion, "default-version", 0, "config version to assume when the file declares none (k3s/rke2 templates: 2 for config.toml.tmpl, 3 for config-v3.toml.tmpl)")
	if handler {
		fs.StringVar(&f.handler, "handler", "", "runtime name, the RuntimeClass handler (e.g. wazero)")
	}
}

// read checks the flags and reads the file.
func (f *configFlags) read(fs *pflag.FlagSet, handler bool) ([]byte, error) {
	if fs.NArg() > 0 {
		return nil, cli.Usagef("unexpected arguments %q", fs.Args())
	}
	if f.file == "" {
		return nil, cli.Usagef("--file is required")
	}
	if handler && f.handler == "" {
		return nil, cli.Usagef("--handler is required")
	}
	doc, err := os.ReadFile(f.file)
	if err != nil {
		return nil, fmt.Errorf("read containerd config: %w", err)
	}
	return doc, nil
}

func newFlagSet(name string, streams cli.Streams) *pflag.FlagSet {
	fs := pflag.NewFlagSet("node-installer containerd-config "+name, pflag.ContinueOnError)
	fs.SetOutput(streams.ErrOut)
	return fs
}

// runtimeFlags describe the runtime for add and drop-in.
type runtimeFlags struct {
	runtimeType string
	runtimePath string
	options     []string
}

func (f *runtimeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.runtimeType, "runtime-type", "", "containerd runtime_type (e.g. io.containerd.wazero.v1)")
	fs.StringVar(&f.runtimePath, "runtime-path", "", "runtime_path, the shim binary (omitted when empty)")
	fs.StringArrayVar(&f.options, "option", nil, `runtime option key=value (repeatable): a TOML value (true/false, integers, floats, "strings", ["arrays", "of strings"]) or else a plain string`)
}

func (f *runtimeFlags) runtime(handler string) (containerdcfg.Runtime, error) {
	if f.runtimeType == "" {
		return containerdcfg.Runtime{}, cli.Usagef("--runtime-type is required")
	}
	rt := containerdcfg.Runtime{Handler: handler, Type: f.runtimeType, Path: f.runtimePath}
	for _, kv := range f.options {
		o, err := containerdcfg.ParseOption(kv)
		if err != nil {
			return containerdcfg.Runtime{}, cli.Usagef("--option: %w", err)
		}
		rt.Options = append(rt.Options, o)
	}
	return rt, nil
}

func runContainerdConfigAdd(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var cf configFlags
	var rf runtimeFlags
	var adopt, containerd2Only bool
	var containerdVersion string
	fs := newFlagSet("add", streams)
	cf.bind(fs, true)
	rf.bind(fs)
	fs.BoolVar(&adopt, "adopt", false, "take over a same-named runtime wasmkube did not write (its lines are commented out and restored by remove)")
	fs.StringVar(&containerdVersion, "containerd-version", "", "version of the containerd that reads the file: its major version (1, 2) or a release (1.6.20, v2.1.5, containerd://2.1.5-k3s1); decides where the runtime goes")
	fs.BoolVar(&containerd2Only, "containerd2-only", false, "only containerd 2.x reads this file (the same as --containerd-version 2)")
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	doc, err := cf.read(fs, true)
	if err != nil {
		return err
	}
	rt, err := rf.runtime(cf.handler)
	if err != nil {
		return err
	}
	major, err := parseContainerdMajor(containerdVersion)
	if err != nil {
		return cli.Usagef("--containerd-version: %w", err)
	}
	if containerd2Only {
		if major == 1 {
			return cli.Usagef("--containerd2-only contradicts --containerd-version %s", containerdVersion)
		}
		major = 2
	}
	out, err := containerdcfg.AddRuntime(doc, rt, containerdcfg.PatchOptions{Adopt: adopt, DefaultVersion: cf.defaultVersion, ContainerdMajor: major})
	if err != nil {
		return fmt.Errorf("add runtime %s to %s: %w%s", cf.handler, cf.file, err, remedy(err, doc, cf))
	}
	_, err = streams.Out.Write(out)
	return err
}

// remedy names the flag that resolves a refusal to edit doc, if one does.
func remedy(err error, doc []byte, cf configFlags) string {
	switch {
	case errors.Is(err, containerdcfg.ErrContainerdVersion):
		return "; pass --containerd-version 1 or 2 (the containerd that reads the file)"
	case errors.Is(err, containerdcfg.ErrConflict):
		return " with --adopt"
	case errors.Is(err, containerdcfg.ErrUnknownVersion) && cf.defaultVersion == 0 && bytes.Contains(doc, []byte("{{")):
		return "; pass --default-version"
	}
	return ""
}

// parseContainerdMajor reads the major version from "2", "1.6.20", "v2.1.5" or "containerd://2.1.5-k3s1";
// "" is 0 (unknown).
func parseContainerdMajor(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	text := strings.TrimPrefix(strings.TrimPrefix(v, "containerd://"), "v")
	text, _, _ = strings.Cut(text, ".")
	major, err := strconv.Atoi(text)
	if err != nil || major < 1 || major > 2 {
		return 0, fmt.Errorf("%q: want containerd 1.x or 2.x, e.g. 1, 2, 1.7.27 or containerd://2.1.5", v)
	}
	return major, nil
}

func runContainerdConfigRemove(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var cf configFlags
	fs := newFlagSet("remove", streams)
	cf.bind(fs, true)
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	doc, err := cf.read(fs, true)
	if err != nil {
		return err
	}
	out, err := containerdcfg.RemoveRuntime(doc, cf.handler, containerdcfg.PatchOptions{DefaultVersion: cf.defaultVersion})
	if err != nil {
		return fmt.Errorf("remove runtime %s from %s: %w%s", cf.handler, cf.file, err, remedy(err, doc, cf))
	}
	_, err = streams.Out.Write(out)
	return err
}

func runContainerdConfigVersion(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var cf configFlags
	fs := newFlagSet("version", streams)
	cf.bind(fs, false)
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	doc, err := cf.read(fs, false)
	if err != nil {
		return err
	}
	v, err := containerdcfg.Version(doc, containerdcfg.PatchOptions{DefaultVersion: cf.defaultVersion})
	if err != nil {
		return fmt.Errorf("config version of %s: %w%s", cf.file, err, remedy(err, doc, cf))
	}
	_, err = fmt.Fprintln(streams.Out, v)
	return err
}

func runContainerdConfigDropIn(_ context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var rf runtimeFlags
	var handler string
	var version int
	fs := newFlagSet("drop-in", streams)
	fs.StringVar(&handler, "handler", "", "runtime name, the RuntimeClass handler (e.g. wazero)")
	fs.IntVar(&version, "config-version", 3, "config version of the drop-in file (2, 3 or 4; containerd 2.x only)")
	rf.bind(fs)
	if err := cli.Parse(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}
	if handler == "" {
		return cli.Usagef("--handler is required")
	}
	rt, err := rf.runtime(handler)
	if err != nil {
		return err
	}
	out, err := containerdcfg.DropIn(version, rt)
	if err != nil {
		return fmt.Errorf("drop-in for runtime %s: %w", handler, err)
	}
	_, err = streams.Out.Write(out)
	return err
}
