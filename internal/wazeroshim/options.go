package wazeroshim

import (
	"bytes"
	"fmt"
	"os"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultCacheDir is the node's compilation cache unless the runtime options name another.
const DefaultCacheDir = "/var/lib/wasmkube/wazero-cache"

// Options are the shim's runtime options. containerd's CRI plugin passes the runtime's whole
// `options` table (plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wazero.options) as
// TOML, or the file named by its ConfigPath key; `ctr run --runtime-config-path FILE` passes a file.
//
//	[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.wazero.options]
//	  CacheDir = "/var/lib/wasmkube/wazero-cache"
type Options struct {
	// CacheDir holds compiled machine code, keyed by module digest and wazero version.
	// "-" disables the disk cache.
	CacheDir string `toml:"CacheDir"`
	// ConfigPath is CRI's key for a file holding these options instead.
	ConfigPath string `toml:"ConfigPath"`
}

// parseOptions decodes the Options of a CreateTaskRequest. Unknown keys are errors, so a typo does
// not silently fall back to a default.
func parseOptions(a *anypb.Any) (Options, error) {
	o := Options{CacheDir: DefaultCacheDir}
	if a == nil || a.GetTypeUrl() == "" {
		return o, nil
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return o, fmt.Errorf("decode runtime options %s: %w", a.GetTypeUrl(), err)
	}
	ro, ok := v.(*runtimeoptions.Options)
	if !ok {
		return o, fmt.Errorf("runtime options of type %T are not the wazero shim's (is the runtime_type io.containerd.wazero.v1?)", v)
	}
	body, source := ro.GetConfigBody(), "the runtime's options table"
	if p := ro.GetConfigPath(); p != "" {
		if body, err = os.ReadFile(p); err != nil {
			return o, fmt.Errorf("read runtime options file: %w", err)
		}
		source = p
	}
	dec := toml.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("parse %s as wazero shim options (known keys: CacheDir): %w", source, err)
	}
	if o.CacheDir == "-" {
		o.CacheDir = ""
	}
	return o, nil
}
