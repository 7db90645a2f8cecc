package main

import (
	"context"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/nodeinstaller"
	"github.com/wasmkube/wasmkube/pkg/shimsource"
)

// installCommand is `node-installer install`.
func installCommand() cli.Command {
	return cli.Command{
		Name:  "install",
		Short: "Install a containerd shim on this node: fetch, place, patch config, restart, verify (rolls back on failure)",
		Run:   runInstall,
	}
}

// bindSource binds the flags that select where the shim binary comes from.
func bindSource(fs *pflag.FlagSet, s *nodeinstaller.Source) {
	fs.StringVar(&s.OCIImage, "source-oci", "", "OCI image holding the shim (REGISTRY/REPO:TAG or @sha256:...)")
	fs.StringVar(&s.OCIPath, "source-path", "", "path of the shim binary inside the --source-oci image")
	fs.StringVar(&s.RegistryConfig, "registry-config", "", "docker config.json with registry credentials (a mounted pull secret)")
	fs.StringVar(&s.HTTPURL, "source-http-url", "", "https URL of the shim binary (or a .tar.gz holding it)")
	fs.StringVar(&s.HTTPSHA256, "source-sha256", "", "sha256 of the --source-http-url download (required with it)")
	fs.BoolVar(&s.HTTPInsecure, "source-insecure-http", false, "allow a plain http:// --source-http-url")
	fs.StringVar(&s.Builtin, "source-builtin", "", "builtin shim shipped in the installer image: "+strings.Join(shimsource.BuiltinNames(), ", "))
	fs.StringVar(&s.BuiltinDir, "builtin-dir", "/shims", "directory holding the builtin shims")
	fs.StringVar(&s.Platform, "platform", "", "platform to fetch for, e.g. linux/arm64 (default: this machine's)")
}

func runInstall(ctx context.Context, args []string, env cli.LookupEnv, streams cli.Streams) error {
	var (
		node nodeinstaller.Node
		src  nodeinstaller.Source
		req  nodeinstaller.InstallRequest
	)
	fs := newFlagSet("install", streams)
	bindNode(fs, &node, env)
	bindSource(fs, &src)
	fs.StringVar(&req.Spec.Shim, "shim-name", "", "name of the Shim (required)")
	fs.StringVar(&req.Spec.Handler, "handler", "", "containerd runtime name = RuntimeClass handler (default: the shim name)")
	fs.StringVar(&req.Spec.RuntimeType, "runtime-type", "", "containerd runtime_type, e.g. io.containerd.spin.v2; names the binary containerd-shim-spin-v2 (required)")
	fs.StringArrayVar(&req.Options, "option", nil, `runtime option key=value, repeatable; the value is a TOML value (true/false, integers, floats, "strings" with TOML escapes, ["arrays", "of strings"]) or else a plain string; from the environment one per line`)
	fs.StringVar(&req.Spec.SpecHash, "spec-hash", "", "hash of the Shim spec, recorded in the state file and the result")
	fs.BoolVar(&req.DryRun, "dry-run", false, "print the plan and the config diff; change nothing")
	if err := parse(fs, "install: ", args, env); err != nil {
		return err
	}
	return nodeinstaller.Install(ctx, node, src, req, streams)
}
