package containerdcfg

import (
	"fmt"
	"maps"
	"slices"
)

// readers returns the containerd major versions whose reading of the document an edit must satisfy:
// the given one, or, when it is unknown (0), every generation that loads the config version. containerd
// 1.x reads versions 1 and 2 (1.6 loads a version 3 file without error, but its runtimes vanish).
func readers(major, version int) ([]int, error) {
	switch {
	case major == 1 && version >= 3:
		return nil, fmt.Errorf("%w: version %d config: containerd 1.x reads versions 1 and 2 only (1.6 loads a version %d file and silently drops its runtimes)", ErrUnknownVersion, version, version)
	case major == 1 || major == 2:
		return []int{major}, nil
	case major != 0:
		return nil, fmt.Errorf("%w: containerd major version %d (want 1 or 2, or 0 when unknown)", ErrContainerdVersion, major)
	case version >= 3:
		return []int{2}, nil
	}
	return []int{1, 2}, nil
}

// runtimesTable returns the key path of the runtimes table that containerd of the given major version
// reads from a decoded config of the given version, e.g. [plugins io.containerd.grpc.v1.cri containerd
// runtimes].
//
// containerd 1.x reads plugins.cri in version 1 and plugins."io.containerd.grpc.v1.cri" in version 2.
// containerd 2.x reads plugins."io.containerd.cri.v1.runtime" and migrates older files on load: version
// 1 plugin names become URIs (cri -> io.containerd.grpc.v1.cri), then the CRI runtime settings move to
// io.containerd.cri.v1.runtime key by key, each only where the file does not set that key there itself.
// So when a version 1 or 2 file has a runtimes table under io.containerd.cri.v1.runtime (as AKS's
// containerd 2 configuration does), 2.x reads that one and drops the old plugin's runtimes whole. When
// neither table exists, both places work for 2.x; the file's own plugin ID decides.
func runtimesTable(tree map[string]any, version, major int) []string {
	at := func(id string) []string { return []string{"plugins", id, "containerd", "runtimes"} }
	old := at(pluginV2)
	if version == 1 {
		old = at(pluginV1)
	}
	switch {
	case version >= 3:
		return at(pluginV3)
	case major == 1:
		return old
	}
	if _, ok := lookup(tree, at(pluginV3)); ok {
		return at(pluginV3)
	}
	if _, ok := lookup(tree, old); ok {
		return old
	}
	if _, ok := lookup(tree, []string{"plugins", pluginV3}); ok {
		return at(pluginV3)
	}
	return old
}

// defaultRuntime is the runtime containerd 1.x defines by itself: its runtimes table from the file
// replaces the built-in one as a whole, so a file that defines no runtimes keeps this one, and a file
// that defines any loses it. These are containerd 1.6's values (its `config dump` of a file without
// runtimes); 1.7's built-in options are a subset of them, all zero values as here.
var defaultRuntime = Runtime{
	Handler: "runc",
	Type:    "io.containerd.runc.v2",
	Options: []Option{
		{Key: "BinaryName", Value: ""},
		{Key: "CriuImagePath", Value: ""},
		{Key: "CriuPath", Value: ""},
		{Key: "CriuWorkPath", Value: ""},
		{Key: "IoGid", Value: int64(0)},
		{Key: "IoUid", Value: int64(0)},
		{Key: "NoNewKeyring", Value: false},
		{Key: "NoPivotRoot", Value: false},
		{Key: "Root", Value: ""},
		{Key: "ShimCgroup", Value: ""},
		{Key: "SystemdCgroup", Value: false},
	},
}

// builtin marks a runtime that containerd defines by itself, not the file.
const builtin = "built-in"

// visibleRuntimes returns the runtimes containerd of the given major version ends up with when it reads
// tree, keyed by name: the file's runtimes table, as decoded, plus the built-in runc where that
// generation keeps it (2.x merges the file's runtimes into its defaults; 1.x keeps its defaults only
// when the file has no runtimes table at all). A template that includes k3s/rke2's base template has
// one: the base defines runc.
func visibleRuntimes(tree map[string]any, version, major int, includesBase bool) map[string]any {
	out := map[string]any{}
	table, ok := lookup(tree, runtimesTable(tree, version, major))
	if m, isMap := table.(map[string]any); isMap {
		maps.Copy(out, m)
	}
	if _, defined := out[defaultRuntime.Handler]; !defined && (major == 2 || !ok && !includesBase) {
		out[defaultRuntime.Handler] = builtin
	}
	return out
}

// checkReaders checks, for every generation in readers, that containerd reading out sees the runtime rt
// exactly, and still sees every other runtime it saw in in, unchanged (a built-in runtime may become
// the same runtime written by wasmkube's default block).
func checkReaders(in, out map[string]any, version int, majors []int, includesBase bool, rt Runtime) error {
	for _, major := range majors {
		before, after := visibleRuntimes(in, version, major, includesBase), visibleRuntimes(out, version, major, includesBase)
		table := style{}.keyPath(runtimesTable(out, version, major))
		if got, ok := after[rt.Handler]; !ok || !equalValues(got, rt.table()) {
			return fmt.Errorf("containerd %d.x would not run %s: it reads %s, where %s is %v", major, rt.Handler, table, rt.Handler, got)
		}
		for _, name := range slices.Sorted(maps.Keys(before)) {
			if name == rt.Handler {
				continue
			}
			was, is := before[name], after[name]
			switch {
			case is == nil:
				return fmt.Errorf("containerd %d.x would lose runtime %s: it reads %s now", major, name, table)
			case was == builtin && major == 1 && name == defaultRuntime.Handler && equalValues(is, defaultRuntime.table()):
			case !equalValues(was, is):
				return fmt.Errorf("containerd %d.x would see runtime %s changed in %s: %v, was %v", major, name, table, is, was)
			}
		}
	}
	return nil
}
