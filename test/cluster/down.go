package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
	"github.com/wasmkube/wasmkube/pkg/cri"
	"github.com/wasmkube/wasmkube/pkg/restart"
)

// podRemovalTimeout bounds stopping and removing the pods through CRI.
const podRemovalTimeout = time.Minute

// Down stops the cluster and removes everything it created, in this order: the kubelet (so that it
// starts no pod again), every pod sandbox through CRI (their containers, network namespaces and IP
// leases), containerd's supervisor and then containerd, containers and shims runc or containerd left
// behind, the scheduler, the controller manager, the apiserver and etcd. Then it kills any process
// still naming the work directory or living in the kubelet's cgroup tree (and reports it: that is a
// leak), removes container log links into the work directory, restores what kubelets change on the
// host once no kubelet runs any more (see BaselineFile), unmounts what is left under the work
// directory, removes the service DNAT chain, the bridge and the cgroup tree (leaves first), and
// finally the work directory. It works on a partly started cluster and is idempotent; when a step
// fails, the others still run, the work directory stays (so that Down can be run again) and the
// error lists every failure.
func (c *Cluster) Down(ctx context.Context) error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	l, n := c.layout, c.state.Network
	start := time.Now()
	stop := func(name string) {
		if p, ok := c.Process(name); ok {
			add(p.stop(ctx, stopGrace))
			c.progress(start, "%s stopped", name)
		}
	}

	stop(Kubelet)
	// Pods go through CRI while containerd serves it. One that never answered holds no pods; one that
	// hangs leaves them to the runc and cgroup clean-up below.
	if running, err := c.ContainerdProcesses(); err != nil {
		add(err)
	} else if _, err := criStatus(ctx, l.CRISocket()); len(running) > 0 && err == nil {
		add(removePods(ctx, l.CRISocket()))
		c.progress(start, "pods removed")
	}
	stop(ContainerdSupervisor)
	add(c.stopContainerd(ctx))
	c.progress(start, "containerd stopped")
	if c.state.Config.Binaries.Runc != "" {
		add(containerdtest.DeleteContainers(c.state.Config.Binaries.Runc, l.RuncRoot()))
	}
	add(containerdtest.KillShims(l.CRISocket()))
	for _, name := range []string{Scheduler, ControllerManager, APIServer, Etcd} {
		stop(name)
	}
	add(killLeftovers(ctx, l.WorkDir, n.CgroupRoot))
	c.progress(start, "processes gone")

	add(removeContainerLogLinks(l.WorkDir))
	add(restoreBaseline(ctx))
	add(unmountAll(l.WorkDir))
	if n.Bridge != "" {
		add(n.removeServiceDNAT())
		add(n.deleteBridge())
	}
	if n.CgroupRoot != "" {
		add(removeCgroupRoot(n.CgroupRoot))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down the cluster in %s (its files are kept; run down again): %w", l.WorkDir, err)
	}
	return removeWorkDir(l.WorkDir)
}

// stopContainerd stops the containerd processes of this cluster (after its supervisor is gone).
func (c *Cluster) stopContainerd(ctx context.Context) error {
	procs, err := c.ContainerdProcesses()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range procs {
		errs = append(errs, Process{Name: containerdProcessName, PID: p.PID, StartTime: p.StartTime}.stop(ctx, stopGrace))
	}
	return errors.Join(errs...)
}

// removePods stops and removes every pod sandbox (with its containers) through CRI.
func removePods(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, podRemovalTimeout)
	defer cancel()
	c, err := cri.Dial(ctx, socket)
	if err != nil {
		return fmt.Errorf("remove pods: %w", err)
	}
	defer c.Close()
	rt := c.Runtime()
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("remove pods: list pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range resp.GetItems() {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod sandbox %s (%s/%s): %w", sb.GetId(), sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod sandbox %s (%s/%s): %w", sb.GetId(), sb.GetMetadata().GetNamespace(), sb.GetMetadata().GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// killLeftovers kills, as a safety net, every process that the orderly stop missed: those naming a
// path below workDir on their command line (except this process and its ancestors, e.g. the shell
// or `go run` that called down) and those in the cgroup tree below cgroupRoot (pod processes). Each
// one found is reported in the error, because finding any is a bug.
func killLeftovers(ctx context.Context, workDir, cgroupRoot string) error {
	procs, err := restart.Processes("/proc")
	if err != nil {
		return err
	}
	byPID := map[int]restart.Process{}
	for _, p := range procs {
		byPID[p.PID] = p
	}
	ancestors := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !ancestors[pid]; pid = byPID[pid].PPID {
		ancestors[pid] = true
	}
	victims := map[int]restart.Process{}
	for _, p := range procs {
		if !ancestors[p.PID] && !p.Zombie() && slices.ContainsFunc(p.Args, func(a string) bool { return strings.Contains(a, workDir+"/") }) {
			victims[p.PID] = p
		}
	}
	if cgroupRoot != "" {
		pids, err := cgroupProcs(cgroupRoot)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if p, ok := byPID[pid]; ok && !p.Zombie() && !ancestors[pid] {
				victims[pid] = p
			}
		}
	}
	if len(victims) == 0 {
		return nil
	}
	var found []string
	for _, p := range victims {
		found = append(found, fmt.Sprintf("PID %d (%s)", p.PID, strings.Join(p.Args, " ")))
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	slices.Sort(found)
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, killGrace, true, func(context.Context) (bool, error) {
		for _, v := range victims {
			if (Process{PID: v.PID, StartTime: v.StartTime}).Alive() {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("left-over processes survive SIGKILL: %s", strings.Join(found, "; "))
	}
	return fmt.Errorf("killed %d left-over processes: %s", len(found), strings.Join(found, "; "))
}

// cgroupProcs lists the PIDs in the cgroup trees below root, in every hierarchy.
func cgroupProcs(root string) ([]int, error) {
	v1, v2, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, h := range append(v1, v2...) {
		err := filepath.WalkDir(filepath.Join(h, root), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list processes in cgroup %s: %w", filepath.Join(h, root), err)
		}
	}
	return pids, nil
}

// removeWorkDir removes the work directory, refusing while anything is mounted below it (removing
// files through a bind mount would delete the host's originals).
func removeWorkDir(dir string) error {
	mounts, err := containerdtest.MountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("remove work directory %s: still mounted below it: %s", dir, strings.Join(mounts, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove work directory %s: %w", dir, err)
	}
	return nil
}
