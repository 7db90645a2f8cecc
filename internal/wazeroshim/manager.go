package wazeroshim

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// RuntimeType is the containerd runtime_type of this shim; containerd runs it as the binary
// containerd-shim-wazero-v1.
const RuntimeType = "io.containerd.wazero.v1"

// Run registers the task service and runs the shim binary: `start` (spawn the shim server for a
// container and print its address), `delete` (clean up after a shim that died), -info, -version, or
// the ttrpc server itself. It is the whole main of cmd/containerd-shim-wazero-v1.
func Run(ctx context.Context) {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			// pkg/shim tunes the collector for a small runc shim (GOGC 40); a wazero shim loads
			// megabytes of machine code at Create, where that costs tens of milliseconds of GC.
			debug.SetGCPercent(100)
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			sd, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			return newService(ic.Context, pp.(shim.Publisher), sd.(shutdown.Service), ic.Properties[plugins.PropertyGRPCAddress]), nil
		},
	})
	shim.RunShim(ctx, manager{})
}

// manager implements the shim binary's one-shot actions.
type manager struct{}

func (manager) Name() string { return RuntimeType }

// Start spawns this binary as the shim server of a pod sandbox (or stand-alone container), listening
// on a socket derived from containerd's address, the namespace and the ID. containerd runs it in the
// bundle directory; it reuses the server for the pod's other containers without calling Start.
func (manager) Start(ctx context.Context, p *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	id := p.GetInstanceID()
	socketDir := p.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, p.GetContainerdGrpcAddress(), id, false)
	if err != nil {
		return nil, err
	}
	result := &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}
	sock, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket %s: %w", address, err)
		}
		if shim.CanConnect(address) {
			return result, nil // this container's shim is already running
		}
		if err := shim.RemoveSocket(address); err != nil {
			return nil, fmt.Errorf("remove stale shim socket %s: %w", address, err)
		}
		if sock, err = shim.NewSocket(address); err != nil {
			return nil, fmt.Errorf("create shim socket %s: %w", address, err)
		}
	}
	defer func() {
		if retErr != nil {
			sock.Close()
			_ = shim.RemoveSocket(address)
		}
	}()
	f, err := sock.File()
	if err != nil {
		return nil, fmt.Errorf("shim socket %s: %w", address, err)
	}
	defer f.Close()

	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the shim binary: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", p.GetContainerdGrpcAddress()}
	if p.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = os.Environ()
	if a := p.GetContainerdTtrpcAddress(); a != "" {
		cmd.Env = append(cmd.Env, "TTRPC_ADDRESS="+a)
	}
	cmd.ExtraFiles = []*os.File{f} // fd 3: the socket the server serves
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the shim server %s: %w", self, err)
	}
	go func() { _ = cmd.Wait() }()
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		log.G(ctx).WithError(err).Debug("cannot raise the shim's OOM score")
	}
	sock.SetUnlinkOnClose(false) // the server serves the socket from its copy of the fd
	sock.Close()
	return result, nil
}

// Stop cleans up after a container whose shim died: the rootfs mount and the cgroup. The guest died
// with its shim, so it reports SIGKILL.
func (manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	bundle, _ := ctx.Value(shim.OptsKey{}).(shim.Opts)
	dir := bundle.BundlePath
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return shim.StopStatus{}, err
		}
	}
	if spec, err := readSpec(dir); err == nil && spec.Linux != nil {
		if err := hostCgroups().removeCgroup(spec.Linux.CgroupsPath); err != nil {
			log.G(ctx).WithError(err).Warn("remove the dead shim's cgroup")
		}
	}
	if err := unmountRootfs(dir); err != nil {
		log.G(ctx).WithError(err).Warn("unmount the dead shim's rootfs")
	}
	return shim.StopStatus{ExitStatus: 128 + int(syscall.SIGKILL), ExitedAt: time.Now()}, nil
}

// Info describes the runtime; it accepts no runtime-specific features.
func (manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	if _, err := shim.ReadRuntimeOptions[any](optionsR); err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).Debug("runtime options passed to -info are ignored")
	}
	return &types.RuntimeInfo{Name: RuntimeType, Version: &types.RuntimeVersion{Version: version()}}, nil
}

// version is the shim's module version and the wazero version it embeds.
func version() string {
	v, wz := "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				wz = d.Version
			}
		}
	}
	return v + " (wazero " + wz + ")"
}
