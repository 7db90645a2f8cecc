package nodeinstaller

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// ConfigFile is a containerd config file (or template) to print edited, for the containerd-config
// command.
type ConfigFile struct {
	// File is the config to read; Handler the runtime to add or remove.
	File, Handler string
	// DefaultVersion is the config version to assume when the file declares none.
	DefaultVersion int
}

// RuntimeDef is the runtime that containerd-config add and drop-in write.
type RuntimeDef struct {
	// Type is runtime_type, Path runtime_path (omitted when empty).
	Type, Path string
	// Options are key=value runtime options (containerdcfg.ParseOption).
	Options []string
}

// Runtime checks d and returns the runtime for handler.
func (d RuntimeDef) Runtime(handler string) (containerdcfg.Runtime, error) {
	if d.Type == "" {
		return containerdcfg.Runtime{}, cli.Usagef("--runtime-type is required")
	}
	rt := containerdcfg.Runtime{Handler: handler, Type: d.Type, Path: d.Path}
	for _, kv := range d.Options {
		o, err := containerdcfg.ParseOption(kv)
		if err != nil {
			return containerdcfg.Runtime{}, cli.Usagef("--option: %w", err)
		}
		rt.Options = append(rt.Options, o)
	}
	return rt, nil
}

// read checks the file and handler and reads the file.
func (c ConfigFile) read(handler bool) ([]byte, error) {
	if c.File == "" {
		return nil, cli.Usagef("--file is required")
	}
	if handler && c.Handler == "" {
		return nil, cli.Usagef("--handler is required")
	}
	doc, err := os.ReadFile(c.File)
	if err != nil {
		return nil, fmt.Errorf("read containerd config: %w", err)
	}
	return doc, nil
}

// AddRuntime is what containerd-config add does besides its flags.
type AddRuntime struct {
	// Adopt takes over a same-named runtime wasmkube did not write.
	Adopt bool
	// ContainerdVersion is the version of the containerd that reads the file ("" unknown);
	// Containerd2Only says it is 2.x.
	ContainerdVersion string
	Containerd2Only   bool
}

// PrintAdded prints c's file with the runtime added or updated in wasmkube's managed block.
func PrintAdded(c ConfigFile, d RuntimeDef, a AddRuntime, out io.Writer) error {
	doc, err := c.read(true)
	if err != nil {
		return err
	}
	rt, err := d.Runtime(c.Handler)
	if err != nil {
		return err
	}
	major, err := parseContainerdMajor(a.ContainerdVersion)
	if err != nil {
		return cli.Usagef("--containerd-version: %w", err)
	}
	if a.Containerd2Only {
		if major == 1 {
			return cli.Usagef("--containerd2-only contradicts --containerd-version %s", a.ContainerdVersion)
		}
		major = 2
	}
	edited, err := containerdcfg.AddRuntime(doc, rt, containerdcfg.PatchOptions{Adopt: a.Adopt, DefaultVersion: c.DefaultVersion, ContainerdMajor: major})
	if err != nil {
		return fmt.Errorf("add runtime %s to %s: %w%s", c.Handler, c.File, err, remedy(err, doc, c))
	}
	_, err = out.Write(edited)
	return err
}

// PrintRemoved prints c's file without wasmkube's block for the handler.
func PrintRemoved(c ConfigFile, out io.Writer) error {
	doc, err := c.read(true)
	if err != nil {
		return err
	}
	edited, err := containerdcfg.RemoveRuntime(doc, c.Handler, containerdcfg.PatchOptions{DefaultVersion: c.DefaultVersion})
	if err != nil {
		return fmt.Errorf("remove runtime %s from %s: %w%s", c.Handler, c.File, err, remedy(err, doc, c))
	}
	_, err = out.Write(edited)
	return err
}

// PrintVersion prints the config version of c's file (1-4).
func PrintVersion(c ConfigFile, out io.Writer) error {
	doc, err := c.read(false)
	if err != nil {
		return err
	}
	v, err := containerdcfg.Version(doc, containerdcfg.PatchOptions{DefaultVersion: c.DefaultVersion})
	if err != nil {
		return fmt.Errorf("config version of %s: %w%s", c.File, err, remedy(err, doc, c))
	}
	_, err = fmt.Fprintln(out, v)
	return err
}

// PrintDropIn prints a stand-alone drop-in file of the given config version holding only the runtime.
func PrintDropIn(handler string, version int, d RuntimeDef, out io.Writer) error {
	if handler == "" {
		return cli.Usagef("--handler is required")
	}
	rt, err := d.Runtime(handler)
	if err != nil {
		return err
	}
	doc, err := containerdcfg.DropIn(version, rt)
	if err != nil {
		return fmt.Errorf("drop-in for runtime %s: %w", handler, err)
	}
	_, err = out.Write(doc)
	return err
}

// remedy names the flag that resolves a refusal to edit doc, if one does.
func remedy(err error, doc []byte, c ConfigFile) string {
	switch {
	case errors.Is(err, containerdcfg.ErrContainerdVersion):
		return "; pass --containerd-version 1 or 2 (the containerd that reads the file)"
	case errors.Is(err, containerdcfg.ErrConflict):
		return " with --adopt"
	case errors.Is(err, containerdcfg.ErrUnknownVersion) && c.DefaultVersion == 0 && bytes.Contains(doc, []byte("{{")):
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
