package controller

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// ErrInvalidInstallerConfig marks an installer config file that does not parse or validate.
var ErrInvalidInstallerConfig = errors.New("invalid installer config")

// InstallerConfig is the content of the manager's --installer-config file (YAML or JSON): pod settings
// of the installer Jobs and per-node overrides of the host layout.
type InstallerConfig struct {
	// Tolerations of the installer pods. Absent keeps the default (tolerate every taint); an empty list
	// means no tolerations.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// PriorityClassName of the installer pods; system-node-critical when empty.
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// NodeOverrides are tried in order; the first whose selector matches a node applies to it.
	NodeOverrides []NodeOverride `json:"nodeOverrides,omitempty"`
	// ImagePullSecrets name Secrets in the installer namespace for pulling the installer image.
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Proxy is the HTTP(S) proxy the installer fetches shims through.
	Proxy Proxy `json:"proxy,omitempty"`
	// Resources are the installer container's requests and limits.
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// Proxy becomes the installer container's HTTP_PROXY, HTTPS_PROXY and NO_PROXY (empty fields are not
// set), which the installer's downloads (OCI registries, HTTPS sources) honour.
type Proxy struct {
	HTTPProxy  string `json:"httpProxy,omitempty"`
	HTTPSProxy string `json:"httpsProxy,omitempty"`
	NoProxy    string `json:"noProxy,omitempty"`
}

// env returns the proxy settings as environment variables.
func (p Proxy) env() []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, kv := range [][2]string{{"HTTP_PROXY", p.HTTPProxy}, {"HTTPS_PROXY", p.HTTPSProxy}, {"NO_PROXY", p.NoProxy}} {
		if kv[1] != "" {
			out = append(out, corev1.EnvVar{Name: kv[0], Value: kv[1]})
		}
	}
	return out
}

// NodeOverride replaces the global host overrides (--installer-containerd-config, --installer-cri-socket,
// --installer-restart) on the nodes whose labels match NodeSelector. An empty field keeps the global value.
type NodeOverride struct {
	// NodeSelector lists labels a node must all carry (equality); it must not be empty.
	NodeSelector map[string]string `json:"nodeSelector"`
	// ContainerdConfig is the host path of containerd's config file.
	ContainerdConfig string `json:"containerdConfig,omitempty"`
	// CRISocket is the host path of the CRI socket.
	CRISocket string `json:"criSocket,omitempty"`
	// Restart is how the installer restarts containerd.
	Restart installerapi.RestartMethod `json:"restart,omitempty"`
}

// Matches reports whether node carries every label of the override's selector.
func (o NodeOverride) Matches(node *corev1.Node) bool {
	return labels.SelectorFromSet(o.NodeSelector).Matches(labels.Set(node.Labels))
}

// LoadInstallerConfig reads and validates an installer config file.
func LoadInstallerConfig(file string) (InstallerConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return InstallerConfig{}, fmt.Errorf("read installer config: %w", err)
	}
	c, err := ParseInstallerConfig(data)
	if err != nil {
		return InstallerConfig{}, fmt.Errorf("installer config %s: %w", file, err)
	}
	return c, nil
}

// ParseInstallerConfig decodes (strictly: unknown keys are errors) and validates an installer config.
// Errors wrap ErrInvalidInstallerConfig and name the bad entry.
func ParseInstallerConfig(data []byte) (InstallerConfig, error) {
	var c InstallerConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return InstallerConfig{}, fmt.Errorf("%w: %w", ErrInvalidInstallerConfig, err)
	}
	if err := c.validate(); err != nil {
		return InstallerConfig{}, fmt.Errorf("%w: %w", ErrInvalidInstallerConfig, err)
	}
	return c, nil
}

func (c InstallerConfig) validate() error {
	if c.PriorityClassName != "" {
		if errs := validation.IsDNS1123Subdomain(c.PriorityClassName); len(errs) > 0 {
			return fmt.Errorf("priorityClassName %q: %s", c.PriorityClassName, strings.Join(errs, "; "))
		}
	}
	for i, t := range c.Tolerations {
		if err := validateToleration(t); err != nil {
			return fmt.Errorf("tolerations[%d]: %w", i, err)
		}
	}
	for i, o := range c.NodeOverrides {
		if err := o.validate(); err != nil {
			return fmt.Errorf("nodeOverrides[%d]: %w", i, err)
		}
	}
	for i, s := range c.ImagePullSecrets {
		if errs := validation.IsDNS1123Subdomain(s.Name); len(errs) > 0 {
			return fmt.Errorf("imagePullSecrets[%d].name %q: %s", i, s.Name, strings.Join(errs, "; "))
		}
	}
	for _, f := range [][2]string{{"httpProxy", c.Proxy.HTTPProxy}, {"httpsProxy", c.Proxy.HTTPSProxy}, {"noProxy", c.Proxy.NoProxy}} {
		if strings.ContainsFunc(f[1], unicode.IsSpace) {
			return fmt.Errorf("proxy.%s %q must not contain whitespace", f[0], f[1])
		}
	}
	for name, req := range c.Resources.Requests {
		if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			return fmt.Errorf("resources: the %s request %s is above its limit %s", name, req.String(), lim.String())
		}
	}
	return nil
}

func validateToleration(t corev1.Toleration) error {
	if t.Key != "" {
		if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
			return fmt.Errorf("key %q: %s", t.Key, strings.Join(errs, "; "))
		}
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			return fmt.Errorf("operator Exists takes no value (got %q)", t.Value)
		}
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			return errors.New("an empty key needs operator Exists")
		}
	default:
		return fmt.Errorf("operator %q: want Exists or Equal", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return fmt.Errorf("effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		return errors.New("tolerationSeconds needs effect NoExecute")
	}
	return nil
}

func (o NodeOverride) validate() error {
	if len(o.NodeSelector) == 0 {
		return errors.New("nodeSelector is empty; set the --installer-* flags (chart: installer.overrides) for every node")
	}
	for _, k := range slices.Sorted(maps.Keys(o.NodeSelector)) {
		v := o.NodeSelector[k]
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("nodeSelector key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("nodeSelector %s value %q: %s", k, v, strings.Join(errs, "; "))
		}
	}
	if o.ContainerdConfig == "" && o.CRISocket == "" && o.Restart == "" {
		return errors.New("sets none of containerdConfig, criSocket and restart")
	}
	for _, f := range [][2]string{{"containerdConfig", o.ContainerdConfig}, {"criSocket", o.CRISocket}} {
		if p := f[1]; p != "" && (!path.IsAbs(p) || path.Clean(p) != p) {
			return fmt.Errorf("%s %q: want a clean absolute host path", f[0], p)
		}
	}
	if o.Restart != "" {
		if _, err := installerapi.ParseRestartMethod(string(o.Restart)); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
	}
	return nil
}

// Apply copies the settings of an installer config into the Job config.
func (c *JobConfig) Apply(ic InstallerConfig) {
	c.Tolerations = ic.Tolerations
	c.PriorityClassName = ic.PriorityClassName
	c.NodeOverrides = ic.NodeOverrides
	c.ImagePullSecrets = ic.ImagePullSecrets
	c.Env = ic.Proxy.env()
	c.Resources = ic.Resources
}

// ForNode returns the Job config for a node: the first matching NodeOverride's non-empty fields replace
// the global host overrides.
func (c JobConfig) ForNode(node *corev1.Node) JobConfig {
	for _, o := range c.NodeOverrides {
		if !o.Matches(node) {
			continue
		}
		if o.ContainerdConfig != "" {
			c.ContainerdConfig = o.ContainerdConfig
		}
		if o.CRISocket != "" {
			c.CRISocket = o.CRISocket
		}
		if o.Restart != "" {
			c.Restart = o.Restart
		}
		break
	}
	return c
}
