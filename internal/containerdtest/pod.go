package containerdtest

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/pkg/cri"
)

// Pod is a pod sandbox with one container, both started through CRI.
type Pod struct {
	SandboxID, ContainerID string
	// Handler is the runtime handler the sandbox was created with ("" = the default, runc).
	Handler string
}

// RunPod starts a pod sandbox through CRI with the given runtime handler ("" = the default) in its own
// network namespace (the daemon's CNI bridge), then creates and starts one container running
// PauseImage in it, and returns their IDs. Cleanup removes it with the daemon's other pods.
func (d *Daemon) RunPod(name, handler string) Pod {
	d.t.Helper()
	pod, err := d.runPod(name, handler)
	if err != nil {
		d.t.Fatalf("run pod %s with runtime handler %q on containerd %s: %v\n%s", name, handler, d.version, err, d.logTail())
	}
	return pod
}

func (d *Daemon) runPod(name, handler string) (Pod, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ReadyTimeout)
	defer cancel()
	c, err := cri.Dial(ctx, d.paths.Socket)
	if err != nil {
		return Pod{}, err
	}
	defer c.Close()
	rt := c.Runtime()
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), Namespace: "containerdtest"},
		Hostname:     name,
		LogDirectory: filepath.Join(d.paths.Dir, "pods", name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD},
		}},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbConfig, RuntimeHandler: handler})
	if err != nil {
		return Pod{}, fmt.Errorf("RunPodSandbox: %w", err)
	}
	pod := Pod{SandboxID: sb.GetPodSandboxId(), Handler: handler}
	ctr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod.SandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
			Image:    &runtimeapi.ImageSpec{Image: PauseImage},
			LogPath:  "main.log",
			Linux:    &runtimeapi.LinuxContainerConfig{},
		},
		SandboxConfig: sbConfig,
	})
	if err != nil {
		return pod, fmt.Errorf("CreateContainer in sandbox %s: %w", pod.SandboxID, err)
	}
	pod.ContainerID = ctr.GetContainerId()
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: pod.ContainerID}); err != nil {
		return pod, fmt.Errorf("StartContainer %s: %w", pod.ContainerID, err)
	}
	return pod, nil
}

// PodRunning reports whether the pod's sandbox is READY and its container RUNNING, and if not, why.
func (d *Daemon) PodRunning(pod Pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	c, err := cri.Dial(ctx, d.paths.Socket)
	if err != nil {
		return err
	}
	defer c.Close()
	sb, err := c.Runtime().PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.SandboxID})
	if err != nil {
		return fmt.Errorf("status of pod sandbox %s: %w", pod.SandboxID, err)
	}
	if st := sb.GetStatus().GetState(); st != runtimeapi.PodSandboxState_SANDBOX_READY {
		return fmt.Errorf("pod sandbox %s is %s", pod.SandboxID, st)
	}
	ctr, err := c.Runtime().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: pod.ContainerID})
	if err != nil {
		return fmt.Errorf("status of container %s: %w", pod.ContainerID, err)
	}
	if st := ctr.GetStatus().GetState(); st != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container %s is %s (reason %q, exit code %d)", pod.ContainerID, st, ctr.GetStatus().GetReason(), ctr.GetStatus().GetExitCode())
	}
	return nil
}
