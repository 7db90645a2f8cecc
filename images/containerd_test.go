package images

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

// containerd is a real containerd 2.x daemon (internal/containerdtest) driven through its own ctr, as a
// user loads images on a node.
type containerd struct {
	daemon *containerdtest.Daemon
	ctrBin string
}

func startContainerd(t *testing.T) *containerd {
	t.Helper()
	return &containerd{
		daemon: containerdtest.Start(t, containerdtest.Options{Version: containerdtest.V2}),
		ctrBin: filepath.Join(testenv.Containerd2Dir(t), "ctr"),
	}
}

// ctr runs ctr against the daemon in the k8s.io namespace (the one the kubelet's CRI uses) and returns
// its combined output.
func (c *containerd) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append([]string{"--address", c.daemon.Socket(), "--namespace", "k8s.io"}, args...)
	cmd := exec.CommandContext(ctx, c.ctrBin, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// waitCRIImage waits until the CRI image service resolves ref, as the kubelet would for a pod with
// imagePullPolicy IfNotPresent or Never.
func (c *containerd) waitCRIImage(t *testing.T, ref string) {
	t.Helper()
	images := c.daemon.Client().Images()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			resp, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			last = err
			return err == nil && resp.GetImage() != nil, nil
		})
	if err != nil {
		t.Errorf("the CRI does not resolve %s after the import: %v (last error %v)", ref, err, last)
	}
}
