package wazeroshim

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/wasmkube/wasmkube/internal/wazeromodule"
)

// service is the task API (v3, over ttrpc) of one shim process. containerd starts one shim per pod
// sandbox (or per stand-alone container) and, because the shim speaks task API v3, creates the pod's
// other containers in that same shim. The first container created (the sandbox) puts the shim
// process in its cgroup, which is the pod's: the guests' CPU time is accounted to the pod.
type service struct {
	ctx       context.Context // namespaced: events and containerd calls use it
	publisher shim.Publisher
	shutdown  shutdown.Service
	address   string // containerd's gRPC socket, for reading images

	createMu sync.Mutex // one Create at a time
	mu       sync.Mutex
	tasks    map[string]*task
	joined   bool // the shim has joined the cgroup of its first container
	cgroups  cgroupHost
	gc       gcPause
	conn     *grpc.ClientConn
}

var _ taskapi.TTRPCTaskService = (*service)(nil)

func newService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service, address string) *service {
	s := &service{ctx: ctx, publisher: publisher, shutdown: sd, address: address, tasks: map[string]*task{}, cgroups: hostCgroups()}
	sd.RegisterCallback(func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.conn != nil {
			return s.conn.Close()
		}
		return nil
	})
	return s
}

// RegisterTTRPC implements shim.TTRPCService.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskapi.RegisterTTRPCTaskService(server, s)
	return nil
}

// get returns the task named id (exec processes do not exist).
func (s *service) get(id, execID string) (*task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %s", id)
	}
	if execID != "" {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %s in container %s", execID, id)
	}
	return t, nil
}

func (s *service) publish(topic string, event any) {
	if err := s.publisher.Publish(s.ctx, topic, event); err != nil {
		log.G(s.ctx).WithError(err).WithField("topic", topic).Warn("publish event")
	}
}

// Create prepares the container: rootfs, cgroup, module and stdio; the module compiles (or loads
// from the cache) in the background until Start.
func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	s.mu.Lock()
	_, exists := s.tasks[r.ID]
	var join *cgroupHost
	if !s.joined {
		join = &s.cgroups
	}
	s.mu.Unlock()
	if exists {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "container %s", r.ID)
	}
	t, err := newTask(ctx, r, s.fromImage, &s.gc, join)
	if err != nil {
		log.G(ctx).WithError(err).Error("create")
		return nil, errgrpc.ToGRPC(err)
	}
	s.mu.Lock()
	s.tasks[r.ID] = t
	s.joined = s.joined || t.cg != nil
	s.mu.Unlock()
	s.publish(runtime.TaskCreateEventTopic, &eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         t.pid,
	})
	return &taskapi.CreateTaskResponse{Pid: t.pid}, nil
}

// fromImage reads the container's module from its image through containerd's gRPC API.
func (s *service) fromImage(ctx context.Context, containerID string) (*wazeromodule.Source, error) {
	ns, _ := namespaces.Namespace(s.ctx)
	s.mu.Lock()
	if s.conn == nil {
		if s.address == "" {
			s.mu.Unlock()
			return nil, fmt.Errorf("containerd's address is unknown: %w", wazeromodule.ErrNoModule)
		}
		target := s.address
		if !strings.Contains(target, "://") {
			target = "unix://" + target
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("connect to containerd at %s: %w", s.address, err)
		}
		s.conn = conn
	}
	conn := s.conn
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(ctx, ns), time.Minute)
	defer cancel()
	return wazeromodule.FromImage(ctx, conn, containerID)
}

// Start runs the module (or, for a sandbox, starts waiting for Kill).
func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	release, err := t.start(ctx, func(status uint32, at time.Time, oom bool) {
		if oom {
			// CRI marks the container OOMKilled on this event; it must come before the exit.
			s.publish(runtime.TaskOOMEventTopic, &eventstypes.TaskOOM{ContainerID: t.id})
		}
		s.publishExit(t, status, at)
	})
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	s.publish(runtime.TaskStartEventTopic, &eventstypes.TaskStart{ContainerID: t.id, Pid: t.pid})
	release()
	return &taskapi.StartResponse{Pid: t.pid}, nil
}

func (s *service) publishExit(t *task, status uint32, at time.Time) {
	s.publish(runtime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: t.id, ID: t.id, Pid: t.pid, ExitStatus: status, ExitedAt: protobuf.ToTimestamp(at),
	})
}

// Delete releases a stopped (or never started) container.
func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status, _, _ := t.state()
	switch status {
	case tasktypes.Status_RUNNING:
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is running: kill it first", t.id)
	case tasktypes.Status_CREATED:
		if exited, code, at, err := t.kill(syscall.SIGKILL); err == nil && exited {
			s.publishExit(t, code, at)
		}
	}
	if err := t.cleanup(ctx); err != nil {
		log.G(ctx).WithError(err).Warn("clean up the container")
	}
	_, code, at := t.state()
	s.mu.Lock()
	delete(s.tasks, t.id)
	s.mu.Unlock()
	s.publish(runtime.TaskDeleteEventTopic, &eventstypes.TaskDelete{
		ContainerID: t.id, ID: t.id, Pid: t.pid, ExitStatus: code, ExitedAt: protobuf.ToTimestamp(at),
	})
	return &taskapi.DeleteResponse{Pid: t.pid, ExitStatus: code, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// State reports the container's status.
func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	status, code, at := t.state()
	resp := &taskapi.StateResponse{
		ID: t.id, Bundle: t.bundle, Pid: t.pid, Status: status,
		Stdin: t.stdinPath, Stdout: t.stdoutPath, Stderr: t.stderrPath,
		ExitStatus: code,
	}
	if status == tasktypes.Status_STOPPED {
		resp.ExitedAt = protobuf.ToTimestamp(at)
	}
	return resp, nil
}

// Kill stops the guest on terminating signals (see signalEnds).
func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	exited, code, at, err := t.kill(syscall.Signal(r.Signal))
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if exited {
		s.publishExit(t, code, at)
	}
	return &emptypb.Empty{}, nil
}

// Wait blocks until the container exits.
func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
	case <-ctx.Done():
		return nil, errgrpc.ToGRPC(ctx.Err())
	}
	_, code, at := t.state()
	return &taskapi.WaitResponse{ExitStatus: code, ExitedAt: protobuf.ToTimestamp(at)}, nil
}

// Pids lists the container's processes: the guest runs inside the shim process.
func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	t, err := s.get(r.ID, "")
	if err != nil {
		return nil, err
	}
	return &taskapi.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: t.pid}}}, nil
}

// CloseIO closes the guest's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		if err := t.closeStdin(); err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
	}
	return &emptypb.Empty{}, nil
}

// Connect returns the shim's pid and the task's (the same process).
func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	resp := &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: version()}
	if t, err := s.get(r.ID, ""); err == nil {
		resp.TaskPid = t.pid
	}
	return resp, nil
}

// Shutdown ends the shim once it runs no container.
func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	busy := len(s.tasks) > 0
	s.mu.Unlock()
	if busy && !r.Now {
		return &emptypb.Empty{}, nil
	}
	s.shutdown.Shutdown()
	return &emptypb.Empty{}, nil
}

// Stats is not implemented: the container's cgroup has the figures.
func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "stats")
}

// Exec is not implemented: a Wasm container has no other processes to start.
func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "exec in a Wasm container")
}

// ResizePty is not implemented: there is no terminal.
func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "terminal")
}

// Pause is not implemented.
func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "pause")
}

// Resume is not implemented.
func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "resume")
}

// Checkpoint is not implemented.
func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "checkpoint")
}

// Update is not implemented: limits are applied at Create.
func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "update resources")
}
