package main

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// TestAcceptsManagerJobArgs: the node-installer takes the arguments the manager gives its install,
// uninstall and verify Jobs (controller.BuildJob), host overrides included, as they are. The host root
// is an empty directory, so each command gets past its flags and stops at detecting the host.
func TestAcceptsManagerJobArgs(t *testing.T) {
	t.Parallel()
	cfg := controller.DefaultJobConfig()
	cfg.Image, cfg.Restart, cfg.CRISocket = "node-installer:test", "none", "/run/containerd/containerd.sock"
	cfg.ShimDir, cfg.StateFile = "/var/lib/wasmkube/bin", "/var/lib/wasmkube/state.json"
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "wazero"}, Spec: v1alpha1.ShimSpec{
		RuntimeType: "io.containerd.wazero.v1", Source: v1alpha1.ShimSource{Builtin: "wazero"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{
		OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "containerd://2.4.2"}}}
	for _, op := range []rollout.Operation{rollout.Install, rollout.Uninstall, rollout.Verify} {
		t.Run(string(op), func(t *testing.T) {
			t.Parallel()
			job, err := controller.BuildJob(cfg, shim, node, op, rollout.SpecHash(shim))
			if err != nil {
				t.Fatal(err)
			}
			args := append(job.Spec.Template.Spec.Containers[0].Args, "--host-root="+t.TempDir(), "--result-file=", "--timeout=300ms")
			r, _, err := runCmd(t, nil, args...)
			if errors.Is(err, cli.ErrUsage) || r.Reason == installerapi.ReasonInvalidArguments || r.Shim != shim.Name {
				t.Errorf("node-installer %q: %v, result %+v; want the flags taken and the Shim named in the result", args, err, r)
			}
		})
	}
}
