package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// MaxUnavailable resolves spec.rollout.maxUnavailable against the number of selected nodes: nil means
// v1alpha1.DefaultMaxUnavailable, a percentage rounds down, and the result is at least 1.
func MaxUnavailable(v *intstr.IntOrString, selected int) (int, error) {
	if v == nil {
		v = ptr.To(intstr.FromString(v1alpha1.DefaultMaxUnavailable))
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, selected, false)
	if err != nil {
		return 0, fmt.Errorf("resolve maxUnavailable %q: %w", v.String(), err)
	}
	return max(n, 1), nil
}

// MaxFailures resolves spec.rollout.maxFailures: nil means 1.
func MaxFailures(v *int32) int {
	if v == nil {
		return 1
	}
	return int(*v)
}

// JobPhase is what the Job of one operation on one node is doing.
type JobPhase int

// Job phases.
const (
	JobNone        JobPhase = iota // no such Job
	JobActive                      // created (possibly not yet seen by the cache) and not finished
	JobSucceeded                   // finished with a successful install/uninstall
	JobFailed                      // finished without success
	JobUnsupported                 // finished: the node cannot take the shim (its host cannot be configured)
)

// Job is the observed Job of one operation on one node.
type Job struct {
	Phase JobPhase
	// Detail describes the result for Events (installer reason and error, or the Job's condition).
	Detail string
	// Finished is when the Job finished (zero if unknown or not finished).
	Finished time.Time
	// Busy is true for a failed Job whose installer found the node lock held by another operation
	// until its deadline (reason NodeBusy): it changed nothing, and the node waits for a new Job
	// instead of failing.
	Busy bool
	// Repair is true for an install Job that reinstalled a drifted node.
	Repair bool
}

// Node is what Plan needs to know about one node.
type Node struct {
	Name string
	// Selected: the Shim's nodeSelector and the opt-out annotation select the node.
	Selected bool
	// Platform is the node's OS/architecture; empty until the kubelet reported it.
	Platform Platform
	// State is the node's shim.wasmkube.io/<shim> label ("" when absent).
	State v1alpha1.NodeState
	// Hash is the node's shim.wasmkube.io/<shim>.hash annotation.
	Hash string
	// Install is the install Job at the current spec hash; Uninstall the uninstall Job.
	Install, Uninstall Job
	// OtherActive is true while another Job of this Shim (an older spec's install) runs on the node.
	OtherActive bool
	// HandlersReported is true when the kubelet reports node.status.runtimeHandlers at all;
	// HandlerListed is true when the Shim's handler is among them.
	HandlersReported, HandlerListed bool
	// BusyWith names another Shim whose node operation runs on the node: node operations run one at a
	// time per node, whichever Shim they are for, so this Shim's next Job waits (the node is pending,
	// not failed, and does not count against this Shim's budget).
	BusyWith string
	// Unmet says why the node's container runtime does not meet the Shim's requirements ("" when it
	// does, or when the runtime is not known now; see RuntimeID).
	Unmet string
	// Runtime identifies the node's container runtime now: its version and boot ID (see RuntimeID);
	// InstalledRuntime is the one recorded when the node last became ready or unsupported for the Shim
	// ("" when unknown). A difference between two known ones means containerd changed or the node
	// rebooted since: a ready node has drifted, an unsupported one is looked at again.
	Runtime, InstalledRuntime string
	// Verify is the verify Job at the current spec hash.
	Verify Job
}

// Input is one reconcile's view of a Shim's rollout.
type Input struct {
	SpecHash string
	// PreviousHash is the hash the last completed reconcile targeted (status.specHash). When it differs,
	// nodes that failed the old spec are cleared so the new spec retries them.
	PreviousHash string
	// Deleting is true while the Shim is being deleted: every node is uninstalled.
	Deleting bool
	// Platforms the source offers; nil while unknown (an OCI index not resolved yet), which holds
	// installs but not uninstalls.
	Platforms      []Platform
	MaxUnavailable int
	MaxFailures    int
	// Wave is the wave size the last plan returned (0: unknown); see nextWave.
	Wave int
	// Now and HandlerDeadline drive the check of node.status.runtimeHandlers: a ready node whose kubelet
	// reports handlers but not ours, HandlerDeadline after its install finished, drifted (or, when that
	// install was already a repair, failed). A zero HandlerDeadline switches the check off.
	Now             time.Time
	HandlerDeadline time.Duration
	// VerifyInterval is the time between verify Jobs on a ready node whose kubelet reports no handlers;
	// zero switches them off.
	VerifyInterval time.Duration
	Nodes          []Node
}

// Change sets a node's state label and hash annotation ("" removes them), with the Event to report.
type Change struct {
	Node  string
	State v1alpha1.NodeState
	Hash  string
	// Runtime is the node's runtime annotation after the change ("" removes it): the node's RuntimeID
	// when it becomes ready or unsupported, kept through other states, removed with the state and hash.
	Runtime string
	// Event is set when the change reports a node result.
	Event *Event
}

// Event is a node result to report on the Shim.
type Event struct {
	Warning bool
	Reason  string
	Message string
	// Cause is what made a node drift (a DriftCause), for the drift metric.
	Cause DriftCause
}

// DriftCause says how a drifted node was found out.
type DriftCause string

// Drift causes.
const (
	// DriftHandler: the kubelet stopped listing the handler in node.status.runtimeHandlers.
	DriftHandler DriftCause = "handler"
	// DriftRuntime: containerd's version changed since the install.
	DriftRuntime DriftCause = "runtime"
	// DriftReboot: the node rebooted since the install.
	DriftReboot DriftCause = "reboot"
	// DriftVerify: a verify Job failed.
	DriftVerify DriftCause = "verify"
)

// Start asks for a Job running Op on Node.
type Start struct {
	Node string
	Op   Operation
	// Repair marks the install of a drifted node.
	Repair bool
}

// Restart asks to delete a finished Job whose name must be reused (the node went through another
// operation since it ran).
type Restart struct {
	Node string
	Op   Operation
}

// Output is what the reconcile should do, in order: Changes, then Restarts, then Starts (each Start
// comes with a Change to installing/uninstalling).
type Output struct {
	Changes  []Change
	Restarts []Restart
	Starts   []Start
	Counts   v1alpha1.NodeCounts
	// InFlight is the number of nodes with a running Job after this plan.
	InFlight int
	// Wave is how many nodes may be in flight after this plan (slow start, see nextWave); pass it to the
	// next plan as Input.Wave.
	Wave int
	// Paused is true when failures exceed MaxFailures and no new Job was started for that reason.
	Paused bool
	// Pending is the number of nodes still waiting for a Job.
	Pending int
	// Waiting is the number of pending nodes that wait for another Shim's operation on the node.
	Waiting int
	// Canary is true when the budget was limited to one node because no node is ready at this spec yet.
	Canary bool
	// FailedNodes lists up to five failed node names for messages.
	FailedNodes []string
	// RequeueAfter is when the next handler post-check is due (0: none).
	RequeueAfter time.Duration
}

// Plan decides one reconcile of a Shim's rollout. It is deterministic: nodes are taken in name order.
// It leaves each node of in.Nodes as the plan leaves it (State, Hash and InstalledRuntime after the
// Changes, Jobs started): the caller passes a view it owns, which at thousands of nodes saves a copy per
// reconcile.
func Plan(in Input) Output {
	nodes := make([]*Node, len(in.Nodes))
	for i := range in.Nodes {
		nodes[i] = &in.Nodes[i]
	}
	slices.SortFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })

	var out Output
	hashChanged := in.PreviousHash != "" && in.PreviousHash != in.SpecHash
	set := func(n *Node, state v1alpha1.NodeState, hash string, ev *Event) {
		runtime := n.InstalledRuntime
		switch {
		case (state == v1alpha1.NodeReady || state == v1alpha1.NodeUnsupported) && n.Runtime != "":
			runtime = n.Runtime // what the node was found ready or unsupported on
		case state == "" && hash == "":
			runtime = ""
		}
		if n.State == state && n.Hash == hash && n.InstalledRuntime == runtime {
			return
		}
		n.State, n.Hash, n.InstalledRuntime = state, hash, runtime
		out.Changes = append(out.Changes, Change{Node: n.Name, State: state, Hash: hash, Runtime: runtime, Event: ev})
	}
	var installs, uninstalls, verifies []*Node
	readyAtHash, verifying := 0, 0
	idle := true
	for _, n := range nodes {
		idle = idle && !inFlight(n)
		want := n.Selected && !in.Deleting
		busy := n.OtherActive || n.Install.Phase == JobActive || n.Uninstall.Phase == JobActive
		if busy {
			out.InFlight++
		}
		if !want {
			planLeave(n, busy, set, &uninstalls, &out)
			continue
		}
		out.Counts.Selected++
		if n.Platform.Arch == "" || in.Platforms == nil {
			continue // the kubelet or the source has not told us enough yet
		}
		if !Supports(in.Platforms, n.Platform) {
			if n.State != v1alpha1.NodeUnsupported {
				set(n, v1alpha1.NodeUnsupported, n.Hash, &Event{Reason: v1alpha1.ReasonUnsupportedPlatform,
					Message: fmt.Sprintf("node %s: the source has no artifact for %s", n.Name, n.Platform)})
			}
			continue
		}
		// A running or just finished install settles first, so that a node that got the shim keeps its
		// hash (and is uninstalled later) even when it no longer qualifies.
		if n.Unmet != "" && !busy && n.State != v1alpha1.NodeInstalling {
			var ev *Event
			if n.State != v1alpha1.NodeUnsupported {
				ev = &Event{Reason: v1alpha1.ReasonUnsupportedRuntime, Message: fmt.Sprintf("node %s: %s", n.Name, n.Unmet)}
			}
			set(n, v1alpha1.NodeUnsupported, n.Hash, ev)
			continue
		}
		if hashChanged && (n.State == v1alpha1.NodeFailed || n.State == v1alpha1.NodeUnsupported) && n.Install.Phase == JobNone {
			set(n, "", n.Hash, nil) // failed an older spec, or was unsupported for it: try the new one
		}
		if n.State == v1alpha1.NodeUnsupported && n.InstalledRuntime != "" && n.Runtime != "" && n.InstalledRuntime != n.Runtime {
			set(n, "", n.Hash, nil) // unsupported on another runtime (containerd changed, the node rebooted): look again
		}
		switch {
		case n.OtherActive || n.Uninstall.Phase == JobActive:
			// Let the running Job finish before installing this spec.
		case n.Install.Phase == JobFailed && n.Install.Busy:
			// The node lock was held by another operation: nothing changed; run the Job again.
			out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Install})
			out.Pending++
		case n.Install.Phase == JobActive:
			set(n, v1alpha1.NodeInstalling, n.Hash, nil)
		case n.Install.Phase == JobSucceeded && n.State == v1alpha1.NodeInstalling:
			set(n, v1alpha1.NodeReady, in.SpecHash, &Event{Reason: v1alpha1.ReasonInstalled,
				Message: fmt.Sprintf("node %s: installed (%s)", n.Name, n.Install.Detail)})
		case n.Install.Phase == JobFailed && n.State == v1alpha1.NodeInstalling:
			set(n, v1alpha1.NodeFailed, n.Hash, &Event{Warning: true, Reason: v1alpha1.ReasonInstallFailed,
				Message: fmt.Sprintf("node %s: install failed: %s", n.Name, n.Install.Detail)})
		case n.Install.Phase == JobUnsupported && n.State == v1alpha1.NodeInstalling:
			set(n, v1alpha1.NodeUnsupported, n.Hash, &Event{Reason: v1alpha1.ReasonUnsupportedHost,
				Message: fmt.Sprintf("node %s: unsupported: %s", n.Name, n.Install.Detail)})
		case n.State == v1alpha1.NodeReady && n.Hash == in.SpecHash:
			if checkReady(in, n, set, &out) {
				verifies = append(verifies, n)
			}
			if n.Verify.Phase == JobActive {
				verifying++
			}
			if n.State == v1alpha1.NodeDrifted && n.Install.Phase != JobNone {
				out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Install})
			} else if n.State == v1alpha1.NodeDrifted {
				installs = append(installs, n) // repaired in this round when the budget allows
			}
		case n.State == v1alpha1.NodeFailed:
			// Failed this spec: stays failed until the spec changes or someone removes the label.
		case n.State == v1alpha1.NodeUnsupported:
			// The installer found the host unsupported: stays so until the spec changes (no failure).
		case n.Install.Phase != JobNone:
			// A finished Job from an earlier round (the label says the node has moved on since):
			// delete it so its name can be used again.
			out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Install})
		default:
			installs = append(installs, n)
		}
		if n.State == v1alpha1.NodeReady && n.Hash == in.SpecHash {
			readyAtHash++
		}
	}

	// Count failures after this round's transitions; they decide whether the rollout may go on.
	failed := 0
	for _, n := range nodes {
		if n.State == v1alpha1.NodeFailed {
			failed++
			if len(out.FailedNodes) < 5 {
				out.FailedNodes = append(out.FailedNodes, n.Name)
			}
		}
	}
	out.Wave = nextWave(in, idle, out.Changes)
	budget := out.Wave - out.InFlight
	if len(installs) > 0 && readyAtHash == 0 && !in.Deleting {
		out.Canary = true
		budget = min(budget, 1-out.InFlight)
	}
	if failed > in.MaxFailures && len(installs)+len(uninstalls) > 0 {
		out.Paused = true
		budget = 0
	}
	for _, n := range append(uninstalls, installs...) {
		if n.BusyWith != "" {
			out.Pending++
			out.Waiting++
			continue
		}
		if budget <= 0 {
			out.Pending++
			continue
		}
		budget--
		out.InFlight++
		if n.Selected && !in.Deleting {
			repair := n.State == v1alpha1.NodeDrifted
			set(n, v1alpha1.NodeInstalling, n.Hash, nil)
			out.Starts = append(out.Starts, Start{Node: n.Name, Op: Install, Repair: repair})
			n.Install.Phase = JobActive
		} else {
			set(n, v1alpha1.NodeUninstalling, n.Hash, nil)
			out.Starts = append(out.Starts, Start{Node: n.Name, Op: Uninstall})
			n.Uninstall.Phase = JobActive
		}
	}
	// Verify Jobs change nothing on the node and take no rollout budget; they have a budget of their own
	// so that a large cluster is not verified all at once.
	for _, n := range verifies {
		if verifying >= in.MaxUnavailable {
			break
		}
		if n.BusyWith != "" {
			continue // another Shim's Job runs there; one node operation at a time
		}
		verifying++
		out.Starts = append(out.Starts, Start{Node: n.Name, Op: Verify})
	}

	for _, n := range nodes {
		switch n.State {
		case v1alpha1.NodeReady:
			if n.Selected && !in.Deleting && n.Hash == in.SpecHash {
				out.Counts.Ready++
			}
		case v1alpha1.NodeDrifted:
			out.Counts.Drifted++
		case v1alpha1.NodeFailed:
			out.Counts.Failed++
		case v1alpha1.NodeUnsupported:
			out.Counts.Unsupported++
		}
		switch {
		case n.Uninstall.Phase == JobActive:
			out.Counts.Uninstalling++
		case n.Install.Phase == JobActive || n.OtherActive:
			out.Counts.Installing++
		}
	}
	return out
}

// planLeave handles a node that should not have the shim (deselected, opted out, or the Shim deleted).
func planLeave(n *Node, busy bool, set func(*Node, v1alpha1.NodeState, string, *Event), uninstalls *[]*Node, out *Output) {
	switch {
	case n.State == "" && n.Hash == "":
		if n.Uninstall.Phase != JobNone && n.Uninstall.Phase != JobActive {
			return // done; the finished Job expires by its TTL
		}
	case busy:
		if n.Uninstall.Phase == JobActive {
			set(n, v1alpha1.NodeUninstalling, n.Hash, nil)
		}
		// An install still runs: uninstall once it has finished.
	case n.State == v1alpha1.NodeUnsupported && n.Hash == "",
		n.State == v1alpha1.NodeFailed && n.Hash == "" && n.Uninstall.Phase == JobNone:
		// Nothing was ever installed here: unsupported from the start, or the first install failed and
		// was rolled back. (A node that became unsupported after an install keeps its hash.)
		set(n, "", "", nil)
	case n.Uninstall.Phase == JobFailed && n.Uninstall.Busy:
		// The node lock was held by another operation: nothing changed; run the Job again.
		out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Uninstall})
		out.Pending++
	case n.Uninstall.Phase == JobSucceeded && n.State == v1alpha1.NodeUninstalling:
		set(n, "", "", &Event{Reason: v1alpha1.ReasonUninstalled,
			Message: fmt.Sprintf("node %s: uninstalled (%s)", n.Name, n.Uninstall.Detail)})
	case n.Uninstall.Phase == JobFailed && n.State == v1alpha1.NodeUninstalling:
		set(n, v1alpha1.NodeFailed, n.Hash, &Event{Warning: true, Reason: v1alpha1.ReasonUninstallFailed,
			Message: fmt.Sprintf("node %s: uninstall failed: %s", n.Name, n.Uninstall.Detail)})
	case n.Uninstall.Phase == JobFailed && n.State == v1alpha1.NodeFailed:
		// Failed to uninstall; retried once the failed Job has expired.
	case n.Uninstall.Phase != JobNone:
		out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Uninstall})
	default:
		*uninstalls = append(*uninstalls, n)
	}
}

// checkReady looks for drift on a ready node at the current spec: a changed runtime or boot, a handler
// the kubelet stopped listing, or a failed verify Job. A drifted node is reinstalled through the rollout
// (it counts against maxUnavailable like any install, and as a failure only if the reinstall fails). It
// reports whether a verify Job is due on the node.
func checkReady(in Input, n *Node, set func(*Node, v1alpha1.NodeState, string, *Event), out *Output) (verifyDue bool) {
	drift := func(cause DriftCause, why string) {
		if !n.Install.Finished.IsZero() {
			// How soon after the last install (while its Job is kept): it also tells one drift of the node
			// from the next, whose Event the manager would otherwise drop as a repeat (see eventWriter).
			why += fmt.Sprintf(" (%s after the install)", in.Now.Sub(n.Install.Finished).Round(time.Second))
		}
		set(n, v1alpha1.NodeDrifted, n.Hash, &Event{Warning: true, Reason: v1alpha1.ReasonNodeDrifted, Cause: cause,
			Message: fmt.Sprintf("node %s: %s; reinstalling", n.Name, why)})
	}
	switch {
	case n.InstalledRuntime != "" && n.Runtime != "" && n.InstalledRuntime != n.Runtime:
		cause, why := runtimeChange(n.InstalledRuntime, n.Runtime)
		drift(cause, why)
		return false
	case n.InstalledRuntime == "" && n.Runtime != "":
		set(n, v1alpha1.NodeReady, n.Hash, nil) // made ready by an older manager: record the runtime now
	}
	if n.HandlersReported {
		if n.HandlerListed || in.HandlerDeadline <= 0 {
			return false
		}
		if !n.Install.Finished.IsZero() {
			if wait := n.Install.Finished.Add(in.HandlerDeadline).Sub(in.Now); wait > 0 {
				requeue(out, wait)
				return false
			}
			if n.Install.Repair {
				// Never listed after the repair, or dropped again while its Job is kept: another repair
				// would not hold either, and each one restarts containerd.
				set(n, v1alpha1.NodeFailed, n.Hash, &Event{Warning: true, Reason: v1alpha1.ReasonHandlerNotReported,
					Message: fmt.Sprintf("node %s: the kubelet does not list the handler in status.runtimeHandlers %s after its reinstall, though the installer found it in the CRI; not reinstalling again",
						n.Name, in.Now.Sub(n.Install.Finished).Round(time.Second))})
				return false
			}
		}
		drift(DriftHandler, "the kubelet does not list the handler in status.runtimeHandlers")
		return false
	}
	if in.VerifyInterval <= 0 {
		return false
	}
	stale := !n.Install.Finished.IsZero() && n.Verify.Finished.Before(n.Install.Finished)
	switch n.Verify.Phase {
	case JobFailed:
		out.Restarts = append(out.Restarts, Restart{Node: n.Name, Op: Verify})
		if !stale {
			drift(DriftVerify, "the verify Job failed: "+n.Verify.Detail)
		}
		return false
	case JobNone:
		if !n.Install.Finished.IsZero() {
			if wait := n.Install.Finished.Add(in.VerifyInterval).Sub(in.Now); wait > 0 {
				requeue(out, wait)
				return false
			}
		}
		return true
	}
	return false // running, or succeeded: the Job's TTL (the interval) schedules the next one
}

// runtimeChange describes the difference between two RuntimeIDs.
func runtimeChange(was, now string) (DriftCause, string) {
	wasVersion, wasBoot, _ := strings.Cut(was, " boot=")
	nowVersion, nowBoot, _ := strings.Cut(now, " boot=")
	if wasVersion != nowVersion {
		return DriftRuntime, fmt.Sprintf("the container runtime changed from %s to %s", wasVersion, nowVersion)
	}
	return DriftReboot, fmt.Sprintf("the node rebooted (boot ID %s, was %s)", nowBoot, wasBoot)
}

// RuntimeID identifies a node's container runtime as Node.Runtime does: its status.nodeInfo
// containerRuntimeVersion and bootID; "" while the runtime is not known (the kubelet has not reported it,
// or reports it Unknown because the runtime does not answer, as during a containerd restart).
func RuntimeID(containerRuntimeVersion, bootID string) string {
	if !runtimeKnown(containerRuntimeVersion) {
		return ""
	}
	return containerRuntimeVersion + " boot=" + bootID
}

// requeue asks for the next reconcile within d.
func requeue(out *Output, d time.Duration) {
	if out.RequeueAfter == 0 || d < out.RequeueAfter {
		out.RequeueAfter = d
	}
}
