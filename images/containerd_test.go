package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// containerd is a real containerd 2.x daemon on private paths, driven through its own ctr.
type containerd struct {
	dir  string // root of the daemon's private paths; socket at dir/c.sock
	bin  string // directory of containerd, ctr and containerd-shim-runc-v2
	runc string
}

// startContainerd runs containerd 2.x (hack/tools.sh builds it) with root, state and sockets under a
// short private directory, and stops it, its shims and its mounts when t ends.
func startContainerd(t *testing.T) *containerd {
	t.Helper()
	c := &containerd{bin: testenv.Containerd2Dir(t), runc: testenv.Runc(t)}
	dir, err := os.MkdirTemp("/tmp", "wk")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[debug]
  address = %[5]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock"),
		filepath.Join(dir, "t.sock"), filepath.Join(dir, "d.sock"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "containerd"), "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		log.Close()
		killShims(t, dir)
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			select {
			case <-exited:
				return false, fmt.Errorf("containerd exited")
			default:
			}
			_, err := c.ctr(ctx, "version")
			return err == nil, nil
		})
	if err != nil {
		logBytes, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
		t.Fatalf("containerd did not answer on %s: %v\n%s", filepath.Join(dir, "c.sock"), err, logBytes)
	}
	return c
}

// env puts containerd's own runc shim and runc first on PATH.
func (c *containerd) env() []string {
	return append(os.Environ(), "PATH="+c.bin+":"+filepath.Dir(c.runc)+":"+os.Getenv("PATH"))
}

// ctr runs ctr against the daemon in the k8s.io namespace (the one the kubelet's CRI uses) and returns
// its combined output.
func (c *containerd) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append([]string{"--address", filepath.Join(c.dir, "c.sock"), "--namespace", "k8s.io"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "ctr"), full...)
	cmd.Env = c.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// killShims kills shim processes left behind by a failed test: they name the daemon's socket under dir.
func killShims(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mounts[i], err)
		}
	}
}
