package controller

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestJobConfigForNode(t *testing.T) {
	t.Parallel()
	global := JobConfig{Restart: "signal", ContainerdConfig: "/etc/containerd/config.toml", CRISocket: "/run/containerd/containerd.sock",
		NodeOverrides: []NodeOverride{
			{NodeSelector: map[string]string{"distro": "k3s", "pool": "edge"}, CRISocket: "/run/k3s/containerd/containerd.sock",
				ContainerdConfig: "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"},
			{NodeSelector: map[string]string{"distro": "k3s"}, Restart: "none"},
			{NodeSelector: map[string]string{"pool": "edge"}, Restart: "systemd"},
		}}
	for name, tc := range map[string]struct {
		labels                   map[string]string
		restart, config, criSock string
	}{
		"no labels keeps the flags": {nil, "signal", "/etc/containerd/config.toml", "/run/containerd/containerd.sock"},
		"first entry needs all labels": {map[string]string{"distro": "k3s", "pool": "edge", "x": "y"}, "signal",
			"/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", "/run/k3s/containerd/containerd.sock"},
		"second entry; empty fields keep the flags": {map[string]string{"distro": "k3s"}, "none",
			"/etc/containerd/config.toml", "/run/containerd/containerd.sock"},
		"third entry":         {map[string]string{"pool": "edge"}, "systemd", "/etc/containerd/config.toml", "/run/containerd/containerd.sock"},
		"value must be equal": {map[string]string{"distro": "k3S"}, "signal", "/etc/containerd/config.toml", "/run/containerd/containerd.sock"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := global.ForNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: tc.labels}})
			if string(got.Restart) != tc.restart || got.ContainerdConfig != tc.config || got.CRISocket != tc.criSock {
				t.Fatalf("ForNode = restart %q config %q socket %q; want %q %q %q", got.Restart, got.ContainerdConfig,
					got.CRISocket, tc.restart, tc.config, tc.criSock)
			}
		})
	}
}

func TestLoadInstallerConfig(t *testing.T) {
	t.Parallel()
	c, err := LoadInstallerConfig(filepath.Join("testdata", "installer-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tolerations) != 2 || c.PriorityClassName != "wasmkube-installer" || len(c.NodeOverrides) != 2 ||
		c.NodeOverrides[0].CRISocket != "/run/k3s/containerd/containerd.sock" || len(c.ImagePullSecrets) != 1 ||
		c.Proxy.NoProxy != "10.0.0.0/8,.svc,.cluster.local" || c.Resources.Limits.Memory().String() != "256Mi" {
		t.Fatalf("LoadInstallerConfig = %+v", c)
	}
	// JSON is YAML too; an empty list means no tolerations, absent keeps the default.
	c, err = ParseInstallerConfig([]byte(`{"tolerations": []}`))
	if err != nil || c.Tolerations == nil || len(c.Tolerations) != 0 {
		t.Fatalf("ParseInstallerConfig(empty tolerations) = %+v, %v; want an empty non-nil list", c, err)
	}
	if c, err = ParseInstallerConfig([]byte("")); err != nil || c.Tolerations != nil {
		t.Fatalf("ParseInstallerConfig(empty) = %+v, %v; want nil tolerations", c, err)
	}
	if _, err := LoadInstallerConfig(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadInstallerConfig(missing) = %v; want ErrNotExist", err)
	}
}

func TestParseInstallerConfigErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ in, want string }{
		"not yaml":          {"tolerations: [", "yaml"},
		"unknown key":       {"priorityClass: x", `unknown field "priorityClass"`},
		"unknown entry key": {"nodeOverrides: [{nodeSelector: {a: b}, restart: none, socket: /x}]", `unknown field "socket"`},
		"bad priority":      {"priorityClassName: Not_Valid", `priorityClassName "Not_Valid"`},
		"bad operator":      {"tolerations: [{key: a}, {key: b, operator: Maybe}]", `tolerations[1]: operator "Maybe"`},
		"exists with value": {"tolerations: [{key: a, operator: Exists, value: v}]", "tolerations[0]: operator Exists takes no value"},
		"equal without key": {"tolerations: [{operator: Equal, value: v}]", "tolerations[0]: an empty key needs operator Exists"},
		"bad effect":        {"tolerations: [{operator: Exists, effect: NoRun}]", `tolerations[0]: effect "NoRun"`},
		"seconds without NoExecute": {"tolerations: [{operator: Exists, tolerationSeconds: 5}]",
			"tolerations[0]: tolerationSeconds needs effect NoExecute"},
		"empty selector":    {"nodeOverrides: [{nodeSelector: {}, restart: none}]", "nodeOverrides[0]: nodeSelector is empty"},
		"no selector":       {"nodeOverrides: [{restart: none}]", "nodeOverrides[0]: nodeSelector is empty"},
		"bad label key":     {"nodeOverrides: [{nodeSelector: {'a b': c}, restart: none}]", `nodeOverrides[0]: nodeSelector key "a b"`},
		"bad label value":   {"nodeOverrides: [{nodeSelector: {a: 'b c'}, restart: none}]", `nodeOverrides[0]: nodeSelector a value "b c"`},
		"nothing to change": {"nodeOverrides: [{nodeSelector: {a: b}, restart: none}, {nodeSelector: {a: c}}]", "nodeOverrides[1]: sets none of"},
		"relative path":     {"nodeOverrides: [{nodeSelector: {a: b}, criSocket: run/c.sock}]", `nodeOverrides[0]: criSocket "run/c.sock"`},
		"unclean path":      {"nodeOverrides: [{nodeSelector: {a: b}, containerdConfig: /etc//c.toml}]", `nodeOverrides[0]: containerdConfig "/etc//c.toml"`},
		"bad restart":       {"nodeOverrides: [{nodeSelector: {a: b}, restart: reboot}]", `nodeOverrides[0]: restart: unknown restart method "reboot": use systemd, signal or none`},
		"bad pull secret":   {"imagePullSecrets: [{name: ok}, {name: Not_OK}]", `imagePullSecrets[1].name "Not_OK"`},
		"proxy with space":  {"proxy: {noProxy: 'a, b'}", `proxy.noProxy "a, b" must not contain whitespace`},
		"unknown proxy key": {"proxy: {http: x}", `unknown field "http"`},
		"bad quantity":      {"resources: {requests: {memory: lots}}", "quantities must match"},
		"request over limit": {"resources: {requests: {memory: 1Gi}, limits: {memory: 256Mi}}",
			"resources: the memory request 1Gi is above its limit 256Mi"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseInstallerConfig([]byte(tc.in))
			if !errors.Is(err, ErrInvalidInstallerConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseInstallerConfig(%q) = %v; want ErrInvalidInstallerConfig containing %q", tc.in, err, tc.want)
			}
		})
	}
}
