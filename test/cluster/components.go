package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

// Component names: the Name of each Process and the base name of its log file.
const (
	Etcd                  = "etcd"
	APIServer             = "kube-apiserver"
	ControllerManager     = "kube-controller-manager"
	Scheduler             = "kube-scheduler"
	Kubelet               = "kubelet"
	ContainerdSupervisor  = "containerd-supervisor"
	containerdProcessName = "containerd" // the supervised process (its own log is the supervisor's)
)

// PauseImage is the pod sandbox image every cluster gets: a static binary built from
// internal/containerdtest/pause and imported with ctr (no registry is involved).
const PauseImage = containerdtest.PauseImage

// supervisorScript keeps containerd running: `sh -c supervisorScript NAME CONTAINERD --config FILE`.
// containerd runs in a session of its own with exactly the argv given, so the node installer's
// `signal` restart finds it in /proc by its config path, sends it SIGTERM and sees its successor. A
// containerd that fails right after starting (a broken config) is retried once a second, any other
// after 100 ms. SIGTERM to the supervisor itself stops containerd and then the supervisor: the trap
// only sets a flag, which the loop checks before starting containerd and after every wait (a
// trapped signal interrupts `wait`), so no containerd is started once the flag is set.
const supervisorScript = `stop=
trap 'stop=1' TERM INT
while [ -z "$stop" ]; do
  start=$(date +%s)
  echo "--- supervisor: starting $* at $(date -u +%Y-%m-%dT%H:%M:%S.%NZ) ---"
  [ -z "$stop" ] || break
  setsid --wait "$@" &
  child=$!
  [ -n "$stop" ] || wait "$child"
  status=$?
  if [ -n "$stop" ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child"
    echo "--- supervisor: stopped at $(date -u +%Y-%m-%dT%H:%M:%S.%NZ) ---"
    exit 0
  fi
  echo "--- supervisor: containerd exited with status $status at $(date -u +%Y-%m-%dT%H:%M:%S.%NZ) ---"
  if [ "$status" -ne 0 ] && [ $(( $(date +%s) - start )) -lt 2 ]; then sleep 1; else sleep 0.1; fi
done`

// hostPATH is the part of every component's PATH after its own binaries.
const hostPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// env returns this process's environment with PATH replaced by dirs followed by hostPATH.
func env(dirs ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+strings.Join(append(dirs, hostPATH), ":"))
}

func (c *Cluster) pki(name string) string { return filepath.Join(c.layout.PKI(), name) }

func (c *Cluster) etcdArgs() []string {
	n := c.state.Network
	client := fmt.Sprintf("http://127.0.0.1:%d", n.Ports.EtcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", n.Ports.EtcdPeer)
	return []string{c.state.Config.Binaries.Etcd,
		"--name=default",
		"--data-dir=" + c.layout.EtcdData(),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync", // a throw-away cluster: fsync costs seconds on a busy disk
		"--log-level=warn",
	}
}

func (c *Cluster) apiServerArgs() []string {
	n := c.state.Network
	return []string{filepath.Join(c.state.Config.Binaries.KubeDir, APIServer),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", n.Ports.EtcdClient),
		"--bind-address=0.0.0.0",
		fmt.Sprintf("--secure-port=%d", n.Ports.APIServer),
		"--advertise-address=" + n.NodeIP,
		"--cert-dir=" + c.pki("apiserver-generated"),
		"--tls-cert-file=" + c.pki("apiserver.crt"), "--tls-private-key-file=" + c.pki("apiserver.key"),
		"--client-ca-file=" + c.pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki("sa.pub"),
		"--service-account-signing-key-file=" + c.pki("sa.key"),
		"--service-cluster-ip-range=" + n.ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--kubelet-client-certificate=" + c.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + c.pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + c.pki("ca.crt"),
		"--profiling=false",
	}
}

func (c *Cluster) controllerManagerArgs() []string {
	n := c.state.Network
	kubeconfig := c.pki("controller-manager.kubeconfig")
	return []string{filepath.Join(c.state.Config.Binaries.KubeDir, ControllerManager),
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", n.Ports.ControllerManager),
		"--cert-dir=" + c.pki("controller-manager-generated"),
		"--root-ca-file=" + c.pki("ca.crt"),
		"--service-account-private-key-file=" + c.pki("sa.key"),
		"--cluster-signing-cert-file=" + c.pki("ca.crt"), "--cluster-signing-key-file=" + c.pki("ca.key"),
		"--service-cluster-ip-range=" + n.ServiceCIDR,
		// One identity for every controller, and a high client limit: the default ServiceAccount (which
		// pods wait for) then appears in ~0.2 s instead of ~6 s.
		"--use-service-account-credentials=false", "--kube-api-qps=100", "--kube-api-burst=200",
		"--leader-elect=false",
		"--profiling=false",
	}
}

func (c *Cluster) schedulerArgs() []string {
	kubeconfig := c.pki("scheduler.kubeconfig")
	return []string{filepath.Join(c.state.Config.Binaries.KubeDir, Scheduler),
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", c.state.Network.Ports.Scheduler),
		"--cert-dir=" + c.pki("scheduler-generated"),
		"--leader-elect=false",
		"--profiling=false",
	}
}

func (c *Cluster) kubeletArgs() []string {
	return []string{filepath.Join(c.state.Config.Binaries.KubeDir, Kubelet),
		"--config=" + c.layout.KubeletConfig(),
		"--kubeconfig=" + c.pki("kubelet.kubeconfig"),
		"--root-dir=" + c.layout.KubeletRoot(),
		"--cert-dir=" + filepath.Join(c.layout.KubeletRoot(), "pki"),
		"--hostname-override=" + c.state.Config.NodeName,
		"--node-ip=" + c.state.Network.NodeIP,
	}
}

// supervisorArgs runs containerd under supervisorScript; containerdArgs is what the supervisor runs.
func (c *Cluster) supervisorArgs() []string {
	return append([]string{"/bin/sh", "-c", supervisorScript, ContainerdSupervisor}, c.containerdArgs()...)
}

func (c *Cluster) containerdArgs() []string {
	return []string{filepath.Join(c.state.Config.Binaries.ContainerdDir, "containerd"), "--config", c.layout.ContainerdConfig()}
}

// kubeletConfig is the KubeletConfiguration for this machine: cgroup v1 through cgroupfs (no
// systemd), swap tolerated, its own cgroup root, no read-only port, everything it would write
// elsewhere (pod logs, FlexVolume plugins) under the work directory, image garbage collection off (the
// images are imported, there is no registry to pull them again) and eviction only when nearly full.
func (c *Cluster) kubeletConfig() ([]byte, error) {
	n := c.state.Network
	cfg := map[string]any{
		"apiVersion":   "kubelet.config.k8s.io/v1beta1",
		"kind":         "KubeletConfiguration",
		"address":      n.NodeIP,
		"port":         n.Ports.Kubelet,
		"readOnlyPort": 0,
		"healthzPort":  0,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": c.pki("ca.crt")},
		},
		"authorization":               map[string]any{"mode": "Webhook"},
		"tlsCertFile":                 c.pki("kubelet-serving.crt"),
		"tlsPrivateKeyFile":           c.pki("kubelet-serving.key"),
		"containerRuntimeEndpoint":    "unix://" + c.layout.CRISocket(),
		"cgroupDriver":                "cgroupfs",
		"cgroupRoot":                  n.CgroupRoot,
		"failCgroupV1":                false,
		"failSwapOn":                  false,
		"podLogsDir":                  c.layout.PodLogs(),
		"volumePluginDir":             c.layout.VolumePluginDir(),
		"clusterDomain":               "cluster.local",
		"resolvConf":                  "/etc/resolv.conf",
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"evictionHard": map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
		// Post status changes (such as new runtime handlers) within seconds.
		"nodeStatusUpdateFrequency": "3s",
		"serializeImagePulls":       false,
		"rotateCertificates":        false,
		"shutdownGracePeriod":       "0s",
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode kubelet config: %w", err)
	}
	return b, nil
}

// containerdConfig is the containerd config in the configured file version, written by
// internal/containerdtest's config writer with this cluster's paths.
func (c *Cluster) containerdConfig() []byte {
	l := c.layout
	return containerdtest.Config(c.state.Config.ContainerdConfigVersion, containerdtest.Paths{
		Root:       l.ContainerdRoot(),
		State:      l.ContainerdState(),
		Socket:     l.CRISocket(),
		TTRPC:      l.TTRPCSocket(),
		RuncRoot:   l.RuncRoot(),
		Runc:       c.state.Config.Binaries.Runc,
		CNIBinDir:  c.state.Config.Binaries.CNIDir,
		CNIConfDir: l.CNIConfDir(),
	})
}

// cniConfig is the pod network: the cluster's bridge as the pods' gateway (so they reach the
// apiserver through the service DNAT), host-local addresses from the pod subnet, and loopback.
func (c *Cluster) cniConfig() ([]byte, error) {
	n := c.state.Network
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "wasmkube-" + n.Bridge,
		"plugins": []map[string]any{
			{
				"type":      "bridge",
				"bridge":    n.Bridge,
				"isGateway": true,
				"ipMasq":    false,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": n.PodCIDR, "gateway": n.Gateway}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": c.layout.CNIDataDir(),
				},
			},
			{"type": "loopback"},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CNI config: %w", err)
	}
	return b, nil
}
