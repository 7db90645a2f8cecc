package containerdcfg

import (
	"fmt"
	"regexp"
)

// Plugin IDs of the CRI runtime configuration per config version.
const (
	pluginV1 = "cri"                          // version 1 (containerd 1.x)
	pluginV2 = "io.containerd.grpc.v1.cri"    // version 2 (containerd 1.x and 2.x)
	pluginV3 = "io.containerd.cri.v1.runtime" // versions 3 and 4 (containerd 2.x)
)

// MinVersion and MaxVersion bound the config versions this package reads and writes.
const (
	MinVersion = 1
	MaxVersion = 4
)

// handlerRE is the RuntimeClass handler syntax (a lowercase RFC 1123 label), which also keeps handler
// names safe inside table keys and marker comments.
var handlerRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validHandler reports whether handler can name a runtime.
func validHandler(handler string) error {
	if len(handler) > 63 || !handlerRE.MatchString(handler) {
		return fmt.Errorf("%w: handler %q must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63 characters), as a RuntimeClass handler", ErrInvalidRuntime, handler)
	}
	return nil
}

// pluginID returns the CRI plugin key for a config version.
func pluginID(version int) (string, error) {
	switch version {
	case 1:
		return pluginV1, nil
	case 2:
		return pluginV2, nil
	case 3, 4:
		return pluginV3, nil
	}
	return "", fmt.Errorf("%w: version %d (this build knows versions %d to %d)", ErrUnknownVersion, version, MinVersion, MaxVersion)
}

// RuntimeTable returns the key path of the runtime table for handler where containerd's own configs of
// the given version keep it (`containerd config default` and `config dump`), e.g. [plugins
// io.containerd.cri.v1.runtime containerd runtimes wazero] for versions 3 and 4. A file may keep it
// elsewhere (see the package documentation); AddRuntime decides from the file.
func RuntimeTable(version int, handler string) ([]string, error) {
	id, err := pluginID(version)
	if err != nil {
		return nil, err
	}
	if err := validHandler(handler); err != nil {
		return nil, err
	}
	return []string{"plugins", id, "containerd", "runtimes", handler}, nil
}

// Version returns the config version of doc: its top-level `version` key, or, when absent,
// opts.DefaultVersion if set, else 1 (containerd's own rule). A template (a document with `{{ ... }}`
// lines) without a version needs opts.DefaultVersion, because its base template declares it. Versions
// outside 1..4, and non-integer versions, fail with ErrUnknownVersion naming the value.
func Version(doc []byte, opts PatchOptions) (int, error) {
	d, err := parse(doc)
	if err != nil {
		return 0, err
	}
	return d.version(opts)
}

func (d *document) version(opts PatchOptions) (int, error) {
	raw, ok := d.tree["version"]
	if !ok {
		switch {
		case opts.DefaultVersion != 0:
			if _, err := pluginID(opts.DefaultVersion); err != nil {
				return 0, fmt.Errorf("default version: %w", err)
			}
			return opts.DefaultVersion, nil
		case d.template:
			return 0, fmt.Errorf("%w: the template declares no version and its base template is not visible: pass the default version (2 for config.toml.tmpl, 3 for config-v3.toml.tmpl)", ErrUnknownVersion)
		}
		return 1, nil
	}
	n, ok := raw.(int64)
	if !ok {
		return 0, fmt.Errorf("%w: version = %#v is not an integer", ErrUnknownVersion, raw)
	}
	if n < MinVersion || n > MaxVersion {
		return 0, fmt.Errorf("%w: version %d (this build knows versions %d to %d)", ErrUnknownVersion, n, MinVersion, MaxVersion)
	}
	return int(n), nil
}
