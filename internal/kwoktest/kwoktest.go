// Package kwoktest runs a small real control plane for tests and benchmarks of the manager: envtest's
// kube-apiserver and etcd, a kube-controller-manager running the Job, TTL and garbage-collection
// controllers, and KWOK simulating nodes and the pods placed on them. Binaries come from the environment
// written by `hack/tools.sh env` (KUBEBUILDER_ASSETS, WASMKUBE_KUBE_DIR, WASMKUBE_KWOK_DIR).
package kwoktest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// ManagedAnnotation marks the nodes KWOK manages.
const ManagedAnnotation = "kwok.x-k8s.io/node"

// Options configure a Cluster.
type Options struct {
	// CRDPaths are directories or files of CRDs to install.
	CRDPaths []string
	// Stages is a KWOK stage file; empty means the package's stages.yaml: nodes Ready at once, Job pods
	// running after 0.1 s and finishing after 1 s, failing on "fail-*" nodes and never on "hang-*" nodes.
	Stages string
	// Scheduler also runs kube-scheduler (for pods without a nodeName, e.g. a plain Job).
	Scheduler bool
	// KCMQPS and KCMBurst set kube-controller-manager's client rate limit (0: 500 and 1000).
	KCMQPS, KCMBurst int
	// JobSyncs sets --concurrent-job-syncs (0: 20).
	JobSyncs int
	// LogDir receives the logs of kube-controller-manager and KWOK (required).
	LogDir string
}

//go:embed stages.yaml
var defaultStages []byte

// Cluster is a running control plane.
type Cluster struct {
	// Config is an admin REST config.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	env        *envtest.Environment
	procs      []*exec.Cmd
}

// Available reports whether the binaries the cluster needs are configured, and if not, why.
func Available() error {
	var errs []error
	for _, env := range []string{testenv.EnvEnvtestAssets, testenv.EnvKubeDir, testenv.EnvKwokDir} {
		if os.Getenv(env) == "" {
			errs = append(errs, fmt.Errorf("%s is not set: run through `make test` or `hack/tools.sh exec -- go test ...`", env))
		}
	}
	return errors.Join(errs...)
}

// Start starts envtest, kube-controller-manager and KWOK. Stop the Cluster even when Start fails.
func Start(o Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	c := &Cluster{env: &envtest.Environment{
		CRDDirectoryPaths:     o.CRDPaths,
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: os.Getenv(testenv.EnvEnvtestAssets),
	}}
	if _, err := c.env.Start(); err != nil {
		return c, fmt.Errorf("start envtest (kube-apiserver + etcd): %w", err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "kwoktest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return c, fmt.Errorf("add admin user: %w", err)
	}
	c.Config = admin.Config()
	c.Config.QPS, c.Config.Burst = 200, 400
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return c, fmt.Errorf("write admin kubeconfig: %w", err)
	}
	c.Kubeconfig = filepath.Join(o.LogDir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig, 0o600); err != nil {
		return c, fmt.Errorf("write %s: %w", c.Kubeconfig, err)
	}
	qps, burst, syncs := o.KCMQPS, o.KCMBurst, o.JobSyncs
	if qps == 0 {
		qps, burst = 500, 1000
	}
	if syncs == 0 {
		syncs = 20
	}
	kcm := filepath.Join(os.Getenv(testenv.EnvKubeDir), "kube-controller-manager")
	if err := c.start(o.LogDir, "kube-controller-manager", kcm,
		"--kubeconfig="+c.Kubeconfig,
		"--controllers=job-controller,ttl-after-finished-controller,garbage-collector-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		fmt.Sprintf("--kube-api-qps=%d", qps), fmt.Sprintf("--kube-api-burst=%d", burst),
		fmt.Sprintf("--concurrent-job-syncs=%d", syncs), "--concurrent-gc-syncs=20"); err != nil {
		return c, err
	}
	if o.Scheduler {
		sched := filepath.Join(os.Getenv(testenv.EnvKubeDir), "kube-scheduler")
		if err := c.start(o.LogDir, "kube-scheduler", sched, "--kubeconfig="+c.Kubeconfig,
			"--leader-elect=false", "--secure-port=0", fmt.Sprintf("--kube-api-qps=%d", qps),
			fmt.Sprintf("--kube-api-burst=%d", burst)); err != nil {
			return c, err
		}
	}
	stages := o.Stages
	if stages == "" {
		stages = filepath.Join(o.LogDir, "stages.yaml")
		if err := os.WriteFile(stages, defaultStages, 0o644); err != nil {
			return c, fmt.Errorf("write %s: %w", stages, err)
		}
	}
	kwok := filepath.Join(os.Getenv(testenv.EnvKwokDir), "bin", "kwok")
	if err := c.start(o.LogDir, "kwok", kwok,
		"--kubeconfig="+c.Kubeconfig, "--config="+stages,
		"--manage-nodes-with-annotation-selector="+ManagedAnnotation+"=fake",
		"--node-lease-duration-seconds=0", "--server-address="); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) start(logDir, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return fmt.Errorf("create log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); log.Close() }()
	c.procs = append(c.procs, cmd)
	return nil
}

// Stop stops every process the Cluster started.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i].Process
		_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for syscall.Kill(p.Pid, 0) == nil {
				time.Sleep(50 * time.Millisecond)
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		}
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop envtest: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Node returns a fake node for KWOK with the given platform architecture, labels and annotations.
func Node(name, arch string, labels, annotations map[string]string) *corev1.Node {
	ann := map[string]string{ManagedAnnotation: "fake"}
	for k, v := range annotations {
		ann[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: ann},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
			Architecture: arch, OperatingSystem: "linux", ContainerRuntimeVersion: "containerd://2.4.2",
		}},
	}
}

// CreateNodes creates nodes and waits until each is Ready with its platform reported.
func CreateNodes(ctx context.Context, c client.Client, nodes ...*corev1.Node) error {
	for _, n := range nodes {
		if err := c.Create(ctx, n); err != nil {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
	}
	for _, n := range nodes {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			var got corev1.Node
			if err := c.Get(ctx, client.ObjectKeyFromObject(n), &got); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return got.Status.NodeInfo.Architecture != "", nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("node %s did not become Ready under KWOK: %w", n.Name, err)
		}
	}
	return nil
}

// DeleteNodes deletes nodes and waits until they are gone.
func DeleteNodes(ctx context.Context, c client.Client, names ...string) error {
	for _, name := range names {
		if err := c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete node %s: %w", name, err)
		}
	}
	return nil
}
