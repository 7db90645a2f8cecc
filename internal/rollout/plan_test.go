package rollout

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

var (
	amd64 = Platform{"linux", "amd64"}
	arm64 = Platform{"linux", "arm64"}
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	installing   = v1alpha1.NodeInstalling
	ready        = v1alpha1.NodeReady
	drifted      = v1alpha1.NodeDrifted
	failed       = v1alpha1.NodeFailed
	unsupported  = v1alpha1.NodeUnsupported
	uninstalling = v1alpha1.NodeUninstalling
)

func node(name string, mut ...func(*Node)) Node {
	n := Node{Name: name, Selected: true, Platform: amd64}
	for _, m := range mut {
		m(&n)
	}
	return n
}

func state(s v1alpha1.NodeState, hash string) func(*Node) {
	return func(n *Node) { n.State, n.Hash = s, hash }
}
func install(p JobPhase) func(*Node)   { return func(n *Node) { n.Install.Phase = p } }
func uninstall(p JobPhase) func(*Node) { return func(n *Node) { n.Uninstall.Phase = p } }
func verify(p JobPhase) func(*Node)    { return func(n *Node) { n.Verify.Phase = p } }
func deselected(n *Node)               { n.Selected = false }
func busyWith(shim string) func(*Node) { return func(n *Node) { n.BusyWith = shim } }

// busyJob marks the install (or uninstall) Job as failed on a locked node.
func busyJob(install bool) func(*Node) {
	return func(n *Node) {
		if install {
			n.Install.Busy = true
		} else {
			n.Uninstall.Busy = true
		}
	}
}

// canaryDone is a node whose install Job at an older hash (the canary of a rollout) just succeeded.
func canaryDone(name string) Node { return node(name, state(installing, "h1"), install(JobSucceeded)) }

// installed is the change that records a successful install at h2.
func installed(name string) Change {
	return Change{Node: name, State: ready, Hash: "h2", Event: &Event{Reason: v1alpha1.ReasonInstalled,
		Message: "node " + name + ": installed ()"}}
}

func unmet(why string) func(*Node) { return func(n *Node) { n.Unmet = why } }
func runtime(installed, now string) func(*Node) {
	return func(n *Node) { n.InstalledRuntime, n.Runtime = installed, now }
}

func driftEvent(node string, cause DriftCause, why string) *Event {
	return &Event{Warning: true, Reason: v1alpha1.ReasonNodeDrifted, Cause: cause,
		Message: "node " + node + ": " + why + "; reinstalling"}
}

// verifyInput is input with verify Jobs every 10 minutes.
func verifyInput(nodes ...Node) Input {
	in := input(nodes...)
	in.VerifyInterval = 10 * time.Minute
	return in
}

func input(nodes ...Node) Input {
	return Input{SpecHash: "h2", PreviousHash: "h2", Platforms: []Platform{amd64}, MaxUnavailable: 2, MaxFailures: 1,
		Now: t0, HandlerDeadline: time.Minute, Nodes: nodes}
}

// TestPlan checks single reconciles: each case gives the nodes' observed state and the expected decisions.
func TestPlan(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in       Input
		changes  []Change
		starts   []Start
		restarts []Restart
		paused   bool
		canary   bool
		requeue  time.Duration
	}{
		"canary first": {
			in:      input(node("a"), node("b"), node("c")),
			changes: []Change{{Node: "a", State: installing}},
			starts:  []Start{{Node: "a", Op: Install}},
			canary:  true,
		},
		// One node operation per node, whichever Shim it is for.
		"a node busy with another Shim waits; the next node is the canary": {
			in:      input(node("a", busyWith("spin")), node("b"), node("c")),
			changes: []Change{{Node: "b", State: installing}},
			starts:  []Start{{Node: "b", Op: Install}},
			canary:  true,
		},
		"nodes busy with other Shims do not use the budget": {
			in: input(canaryDone("a"), node("b", busyWith("spin")), node("c", busyWith("wasmtime")),
				node("d"), node("e")),
			changes: []Change{installed("a"), {Node: "d", State: installing}, {Node: "e", State: installing}},
			starts:  []Start{{Node: "d", Op: Install}, {Node: "e", Op: Install}},
		},
		"an upgrade waits on a busy node, which stays ready": {
			in: input(node("a", state(ready, "h1"), busyWith("spin")), node("b", state(ready, "h2"))),
		},
		"an uninstall waits on a busy node": {
			in: input(node("a", deselected, state(ready, "h2"), busyWith("spin"))),
		},
		"the installer found the node locked: the install runs again": {
			in:       input(node("a", state(installing, "h1"), install(JobFailed), busyJob(true))),
			restarts: []Restart{{Node: "a", Op: Install}},
		},
		"the installer found the node locked: the uninstall runs again": {
			in:       input(node("a", deselected, state(uninstalling, "h2"), uninstall(JobFailed), busyJob(false))),
			restarts: []Restart{{Node: "a", Op: Uninstall}},
		},
		"canary holds while running": {
			in:     input(node("a", state(installing, ""), install(JobActive)), node("b")),
			canary: true,
		},
		"the canary's success doubles the wave": {
			in:      input(canaryDone("a"), node("b"), node("c"), node("d")),
			changes: []Change{installed("a"), {Node: "b", State: installing}, {Node: "c", State: installing}},
			starts:  []Start{{Node: "b", Op: Install}, {Node: "c", Op: Install}},
		},
		"a round of work after an idle time starts with one node": {
			in:      input(node("a", state(ready, "h2")), node("b"), node("c"), node("d")),
			changes: []Change{{Node: "b", State: installing}},
			starts:  []Start{{Node: "b", Op: Install}},
		},
		"budget counts running jobs of any kind": {
			in: input(node("a", state(ready, "h2")), node("b", state(installing, ""), install(JobActive)),
				node("c", func(n *Node) { n.OtherActive = true }), node("d")),
		},
		"success makes ready with hash": {
			in: input(node("a", state(installing, "h1"), install(JobSucceeded))),
			changes: []Change{{Node: "a", State: ready, Hash: "h2", Event: &Event{Reason: v1alpha1.ReasonInstalled,
				Message: "node a: installed ()"}}},
		},
		"failure keeps old hash": {
			in: input(node("a", state(installing, "h1"), install(JobFailed)), node("b", state(ready, "h2"))),
			changes: []Change{{Node: "a", State: failed, Hash: "h1", Event: &Event{Warning: true,
				Reason: v1alpha1.ReasonInstallFailed, Message: "node a: install failed: "}}},
		},
		"failed node stays failed": {
			in: input(node("a", state(failed, ""), install(JobFailed)), node("b", state(ready, "h2"))),
		},
		"failures beyond budget pause": {
			in: input(node("a", state(failed, "")), node("b", state(failed, "")), node("c", state(ready, "h2")),
				node("d")),
			paused: true,
		},
		"failures within budget go on": {
			in:      input(node("a", state(failed, "")), node("c", state(ready, "h2")), node("d")),
			changes: []Change{{Node: "d", State: installing}},
			starts:  []Start{{Node: "d", Op: Install}},
		},
		"spec change retries failed nodes": {
			in: func() Input {
				in := input(node("a", state(failed, "h1")), node("b", state(failed, "h1")), node("c", state(ready, "h1")))
				in.PreviousHash = "h1"
				return in
			}(),
			changes: []Change{{Node: "a", State: "", Hash: "h1"}, {Node: "b", State: "", Hash: "h1"},
				{Node: "a", State: installing, Hash: "h1"}},
			starts: []Start{{Node: "a", Op: Install}},
			canary: true,
		},
		"upgrade goes through the budget": {
			in: input(canaryDone("a"), node("b", state(ready, "h1")), node("c", state(ready, "h1")),
				node("d", state(ready, "h1"))),
			changes: []Change{installed("a"), {Node: "b", State: installing, Hash: "h1"}, {Node: "c", State: installing, Hash: "h1"}},
			starts:  []Start{{Node: "b", Op: Install}, {Node: "c", Op: Install}},
		},
		"older install finishes first": {
			in: input(node("a", state(ready, "h2")), node("b", state(installing, "h1"), func(n *Node) { n.OtherActive = true })),
		},
		"unknown platform waits": {
			in: input(node("a", func(n *Node) { n.Platform = Platform{} }), node("b", state(ready, "h2"))),
		},
		"unresolved source waits": {
			in: func() Input { in := input(node("a")); in.Platforms = nil; return in }(),
		},
		"unsupported platform gets no job": {
			in: input(node("a", func(n *Node) { n.Platform = arm64 })),
			changes: []Change{{Node: "a", State: unsupported, Event: &Event{Reason: v1alpha1.ReasonUnsupportedPlatform,
				Message: "node a: the source has no artifact for linux/arm64"}}},
		},
		"unsupported host makes the node unsupported, not failed": {
			in: input(node("a", state(installing, "h1"), install(JobUnsupported)), node("b", state(ready, "h2"))),
			changes: []Change{{Node: "a", State: unsupported, Hash: "h1", Event: &Event{Reason: v1alpha1.ReasonUnsupportedHost,
				Message: "node a: unsupported: "}}},
		},
		"unsupported hosts stay and spend no failure budget": {
			in: input(node("a", state(unsupported, "")), node("b", state(unsupported, ""), install(JobSucceeded)),
				node("c", state(ready, "h2")), node("d")),
			changes: []Change{{Node: "d", State: installing}},
			starts:  []Start{{Node: "d", Op: Install}},
		},
		"spec change retries unsupported hosts": {
			in: func() Input {
				in := input(node("a", state(unsupported, "h1")), node("b", state(ready, "h1")))
				in.PreviousHash = "h1"
				return in
			}(),
			changes: []Change{{Node: "a", State: "", Hash: "h1"}, {Node: "a", State: installing, Hash: "h1"}},
			starts:  []Start{{Node: "a", Op: Install}},
			canary:  true,
		},
		"opt-out uninstalls": {
			in:      input(node("a", deselected, state(ready, "h2")), node("b", state(ready, "h2"))),
			changes: []Change{{Node: "a", State: uninstalling, Hash: "h2"}},
			starts:  []Start{{Node: "a", Op: Uninstall}},
		},
		"uninstall done removes label and hash": {
			in: input(node("a", deselected, state(uninstalling, "h2"), uninstall(JobSucceeded))),
			changes: []Change{{Node: "a", Event: &Event{Reason: v1alpha1.ReasonUninstalled,
				Message: "node a: uninstalled ()"}}},
		},
		"uninstall failure": {
			in: input(node("a", deselected, state(uninstalling, "h2"), uninstall(JobFailed))),
			changes: []Change{{Node: "a", State: failed, Hash: "h2", Event: &Event{Warning: true,
				Reason: v1alpha1.ReasonUninstallFailed, Message: "node a: uninstall failed: "}}},
		},
		"deselected unsupported node is cleared": {
			in:      input(node("a", deselected, state(unsupported, ""))),
			changes: []Change{{Node: "a"}},
		},
		"deselected node waits for its install": {
			in: input(node("a", deselected, state(installing, ""), install(JobActive))),
		},
		"deleting uninstalls every node within budget": {
			in: func() Input {
				in := input(node("a", state(uninstalling, "h2"), uninstall(JobSucceeded)), node("b", state(ready, "h2")),
					node("c", state(failed, "")), node("d"), node("e", state(ready, "h2")), node("f", state(ready, "h2")))
				in.Deleting, in.Wave = true, 1
				return in
			}(),
			changes: []Change{{Node: "a", Event: &Event{Reason: v1alpha1.ReasonUninstalled, Message: "node a: uninstalled ()"}},
				{Node: "c"}, {Node: "b", State: uninstalling, Hash: "h2"}, {Node: "e", State: uninstalling, Hash: "h2"}},
			starts: []Start{{Node: "b", Op: Uninstall}, {Node: "e", Op: Uninstall}},
		},
		"deselected node whose upgrade failed is uninstalled": {
			in:      input(node("a", deselected, state(failed, "h1"))),
			changes: []Change{{Node: "a", State: uninstalling, Hash: "h1"}},
			starts:  []Start{{Node: "a", Op: Uninstall}},
		},
		"stale finished install job is deleted before reuse": {
			in:       input(node("a", state(ready, "h2")), node("b", install(JobSucceeded))),
			restarts: []Restart{{Node: "b", Op: Install}},
		},
		"stale finished uninstall job is deleted before reuse": {
			in:       input(node("a", deselected, state(ready, "h2"), uninstall(JobSucceeded))),
			restarts: []Restart{{Node: "a", Op: Uninstall}},
		},
		"restart mid-rollout: label without job starts again": {
			in:      input(node("a", state(ready, "h2")), node("b", state(installing, ""))),
			changes: nil,
			starts:  []Start{{Node: "b", Op: Install}},
		},
		"post-check waits for the deadline": {
			in: input(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) {
				n.HandlersReported, n.Install.Finished = true, t0.Add(-20*time.Second)
			})),
			requeue: 40 * time.Second,
		},
		"a handler the kubelet does not list after the deadline: drifted": {
			in: input(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) {
				n.HandlersReported, n.Install.Finished = true, t0.Add(-61*time.Second)
			})),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Event: driftEvent("a", DriftHandler,
				"the kubelet does not list the handler in status.runtimeHandlers (1m1s after the install)")}},
			restarts: []Restart{{Node: "a", Op: Install}}, // its install Job's name is reused by the repair
		},
		"a handler that disappears long after the install: drifted and repaired": {
			in: input(node("a", state(ready, "h2"), func(n *Node) { n.HandlersReported = true }), node("b", state(ready, "h2"))),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Event: driftEvent("a", DriftHandler,
				"the kubelet does not list the handler in status.runtimeHandlers")}, {Node: "a", State: installing, Hash: "h2"}},
			starts: []Start{{Node: "a", Op: Install, Repair: true}},
		},
		"a repair after which the kubelet still does not list the handler: failed": {
			in: input(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) {
				n.HandlersReported, n.Install.Finished, n.Install.Repair = true, t0.Add(-61*time.Second), true
			})),
			changes: []Change{{Node: "a", State: failed, Hash: "h2", Event: &Event{Warning: true,
				Reason:  v1alpha1.ReasonHandlerNotReported,
				Message: "node a: the kubelet does not list the handler in status.runtimeHandlers 1m1s after its reinstall, though the installer found it in the CRI; not reinstalling again"}}},
		},
		"no handler check with a zero deadline": {
			in: func() Input {
				in := input(node("a", state(ready, "h2"), func(n *Node) { n.HandlersReported = true }))
				in.HandlerDeadline = 0
				return in
			}(),
		},
		"containerd changed since the install: drifted": {
			in: input(node("a", state(ready, "h2"), runtime("containerd://1.7.1 boot=b1", "containerd://2.0.0 boot=b1"), install(JobSucceeded))),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Runtime: "containerd://1.7.1 boot=b1", Event: driftEvent("a", DriftRuntime,
				"the container runtime changed from containerd://1.7.1 to containerd://2.0.0")}},
			restarts: []Restart{{Node: "a", Op: Install}},
		},
		"rebooted since the install: drifted": {
			in: input(node("a", state(ready, "h2"), runtime("containerd://2.0.0 boot=b1", "containerd://2.0.0 boot=b2"), install(JobSucceeded))),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Runtime: "containerd://2.0.0 boot=b1", Event: driftEvent("a", DriftReboot,
				"the node rebooted (boot ID b2, was b1)")}},
			restarts: []Restart{{Node: "a", Op: Install}},
		},
		"a ready node without a recorded runtime gets it": {
			in:      input(node("a", state(ready, "h2"), runtime("", "containerd://2.0.0 boot=b1"))),
			changes: []Change{{Node: "a", State: ready, Hash: "h2", Runtime: "containerd://2.0.0 boot=b1"}},
		},
		"a drifted node is reinstalled as a repair, within the budget": {
			in: func() Input {
				in := input(node("a", state(ready, "h2")), node("b", state(drifted, "h2")), node("c", state(drifted, "h2")),
					node("d", state(drifted, "h2")), node("e", state(installing, "h2"), install(JobActive)))
				in.Wave = 2 // e runs: one more Job fits
				return in
			}(),
			changes: []Change{{Node: "b", State: installing, Hash: "h2"}},
			starts:  []Start{{Node: "b", Op: Install, Repair: true}},
		},
		"a drifted node's finished install Job is deleted first": {
			in:       input(node("a", state(ready, "h2")), node("b", state(drifted, "h2"), install(JobSucceeded))),
			restarts: []Restart{{Node: "b", Op: Install}},
		},
		"a successful repair makes the node ready on its runtime": {
			in: input(node("a", state(installing, "h2"), install(JobSucceeded), runtime("containerd://1.7.1 boot=b1", "containerd://2.0.0 boot=b1"))),
			changes: []Change{{Node: "a", State: ready, Hash: "h2", Runtime: "containerd://2.0.0 boot=b1", Event: &Event{
				Reason: v1alpha1.ReasonInstalled, Message: "node a: installed ()"}}},
		},
		"a failed repair is a failure": {
			in: input(node("a", state(installing, "h2"), install(JobFailed))),
			changes: []Change{{Node: "a", State: failed, Hash: "h2", Event: &Event{Warning: true,
				Reason: v1alpha1.ReasonInstallFailed, Message: "node a: install failed: "}}},
		},
		"a runtime that does not meet the requirements: unsupported": {
			in: input(node("a", unmet("the node's container runtime is cri-o://1.30.0, not containerd")), node("b", state(ready, "h2"))),
			changes: []Change{{Node: "a", State: unsupported, Event: &Event{Reason: v1alpha1.ReasonUnsupportedRuntime,
				Message: "node a: the node's container runtime is cri-o://1.30.0, not containerd"}}},
		},
		"an unsupported node records the runtime it was found unsupported on": {
			in: input(node("a", unmet("containerd 1.7.1 does not satisfy >=2.0"), runtime("", "containerd://1.7.1 boot=b1"))),
			changes: []Change{{Node: "a", State: unsupported, Runtime: "containerd://1.7.1 boot=b1", Event: &Event{Reason: v1alpha1.ReasonUnsupportedRuntime,
				Message: "node a: containerd 1.7.1 does not satisfy >=2.0"}}},
		},
		"a ready node that stops meeting the requirements keeps its hash": {
			in: input(node("a", state(ready, "h2"), unmet("containerd 1.7.1 does not satisfy >=2.0"))),
			changes: []Change{{Node: "a", State: unsupported, Hash: "h2", Event: &Event{Reason: v1alpha1.ReasonUnsupportedRuntime,
				Message: "node a: containerd 1.7.1 does not satisfy >=2.0"}}},
		},
		"an install finishes before the requirements are looked at": {
			in: input(node("a", state(installing, ""), install(JobActive), unmet("containerd 1.7.1 does not satisfy >=2.0"))),
		},
		"an unsupported node whose runtime changed is looked at again": {
			in:      input(node("a", state(ready, "h2")), node("b", state(unsupported, ""), runtime("containerd://1.7.1 boot=b1", "containerd://2.0.0 boot=b1"))),
			changes: []Change{{Node: "b"}, {Node: "b", State: installing}},
			starts:  []Start{{Node: "b", Op: Install}},
		},
		"an unsupported node on the runtime it was found unsupported on stays so": {
			in: input(node("a", state(ready, "h2")), node("b", state(unsupported, ""), runtime("containerd://2.0.0 boot=b1", "containerd://2.0.0 boot=b1"))),
		},
		"a ready node whose runtime is not known now has not drifted": {
			in: input(node("a", state(ready, "h2"), runtime("containerd://2.0.0 boot=b1", ""))),
		},
		"an unsupported node whose runtime is not known now stays so": {
			in: input(node("a", state(ready, "h2")), node("b", state(unsupported, ""), runtime("containerd://1.7.1 boot=b1", ""))),
		},
		"a deselected node that was installed before it became unsupported is uninstalled": {
			in:      input(node("a", deselected, state(unsupported, "h1")), node("b", deselected, state(unsupported, ""))),
			changes: []Change{{Node: "b"}, {Node: "a", State: uninstalling, Hash: "h1"}},
			starts:  []Start{{Node: "a", Op: Uninstall}},
		},
		"verify Jobs start when due, within their own budget": {
			in: verifyInput(node("a", state(ready, "h2")), node("b", state(ready, "h2")), node("c", state(ready, "h2")),
				node("d", state(installing, ""), install(JobActive))),
			starts: []Start{{Node: "a", Op: Verify}, {Node: "b", Op: Verify}},
		},
		"a verify Job is due an interval after the install": {
			in:      verifyInput(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) { n.Install.Finished = t0.Add(-4 * time.Minute) })),
			requeue: 6 * time.Minute,
		},
		"a running or finished verify Job schedules nothing": {
			in: verifyInput(node("a", state(ready, "h2"), verify(JobActive)), node("b", state(ready, "h2"), verify(JobActive)),
				node("c", state(ready, "h2"), verify(JobSucceeded))),
		},
		"a failed verify Job: drifted": {
			in: verifyInput(node("a", state(ready, "h2"), verify(JobFailed), func(n *Node) { n.Verify.Detail = "VerifyFailed: handler a not present" })),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Event: driftEvent("a", DriftVerify,
				"the verify Job failed: VerifyFailed: handler a not present")}, {Node: "a", State: installing, Hash: "h2"}},
			restarts: []Restart{{Node: "a", Op: Verify}},
			starts:   []Start{{Node: "a", Op: Install, Repair: true}},
			canary:   true,
		},
		"a verify Job that failed after the last install: drifted, saying how soon after it": {
			in: verifyInput(node("a", state(ready, "h2"), verify(JobFailed), install(JobSucceeded), func(n *Node) {
				n.Verify.Finished, n.Install.Finished = t0.Add(-time.Minute), t0.Add(-11*time.Minute)
				n.Verify.Detail = "ShimNotRunnable: exec format error"
			})),
			changes: []Change{{Node: "a", State: drifted, Hash: "h2", Event: driftEvent("a", DriftVerify,
				"the verify Job failed: ShimNotRunnable: exec format error (11m0s after the install)")}},
			restarts: []Restart{{Node: "a", Op: Verify}, {Node: "a", Op: Install}},
		},
		"a verify Job that failed before the last install is only deleted": {
			in: verifyInput(node("a", state(ready, "h2"), verify(JobFailed), install(JobSucceeded), func(n *Node) {
				n.Verify.Finished, n.Install.Finished = t0.Add(-time.Hour), t0.Add(-time.Minute)
			})),
			restarts: []Restart{{Node: "a", Op: Verify}},
		},
		"no verify Jobs where the kubelet reports handlers": {
			in: verifyInput(node("a", state(ready, "h2"), func(n *Node) { n.HandlersReported, n.HandlerListed = true, true })),
		},
		"post-check passes a listed handler": {
			in: input(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) {
				n.HandlersReported, n.HandlerListed, n.Install.Finished = true, true, t0.Add(-time.Hour)
			})),
		},
		"post-check skips kubelets that report no handlers": {
			in: input(node("a", state(ready, "h2"), install(JobSucceeded), func(n *Node) { n.Install.Finished = t0.Add(-time.Hour) })),
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := Plan(tc.in)
			if !reflect.DeepEqual(out.Changes, tc.changes) {
				t.Errorf("changes:\n got %+v\nwant %+v", out.Changes, tc.changes)
			}
			if !reflect.DeepEqual(out.Starts, tc.starts) {
				t.Errorf("starts: got %+v, want %+v", out.Starts, tc.starts)
			}
			if !reflect.DeepEqual(out.Restarts, tc.restarts) {
				t.Errorf("restarts: got %+v, want %+v", out.Restarts, tc.restarts)
			}
			if out.Paused != tc.paused || out.Canary != tc.canary || out.RequeueAfter != tc.requeue {
				t.Errorf("paused %v canary %v requeue %v; want %v %v %v", out.Paused, out.Canary, out.RequeueAfter,
					tc.paused, tc.canary, tc.requeue)
			}
		})
	}
}

func TestPlanCountsWaiting(t *testing.T) {
	t.Parallel()
	out := Plan(input(node("a", busyWith("spin")), node("b", state(installing, "h1"), install(JobFailed), busyJob(true)), node("c")))
	if out.Pending != 2 || out.Waiting != 1 || out.Counts.Failed != 0 || out.Paused {
		t.Errorf("pending %d waiting %d failed %d paused %t; want 2 pending (one for another Shim), nothing failed",
			out.Pending, out.Waiting, out.Counts.Failed, out.Paused)
	}
}

func TestPlanCounts(t *testing.T) {
	t.Parallel()
	out := Plan(input(
		node("a", state(ready, "h2")),
		node("b", state(ready, "h1")),
		node("c", state(installing, ""), install(JobActive)),
		node("d", state(failed, "")),
		node("e", func(n *Node) { n.Platform = arm64 }),
		node("f", deselected, state(uninstalling, "h2"), uninstall(JobActive)),
		node("g", deselected),
		node("h", state(drifted, "h2")),
		node("i", unmet("the node's container runtime is cri-o://1.30.0, not containerd")),
	))
	want := v1alpha1.NodeCounts{Selected: 7, Ready: 1, Drifted: 1, Installing: 1, Failed: 1, Unsupported: 2, Uninstalling: 1}
	if out.Counts != want || out.Pending != 2 || out.InFlight != 2 {
		t.Fatalf("counts %+v pending %d in flight %d; want %+v, 2 pending (b and h wait for the budget), 2 in flight", out.Counts, out.Pending, out.InFlight, want)
	}
}

// TestPlanSimulation runs whole rollouts: each step applies the plan, then finishes some running Jobs in a
// seeded random order (some fail). It asserts that no step ever has more than MaxUnavailable nodes
// installing, that the first Job runs alone until one node is ready, that the rollout pauses exactly when
// failures exceed MaxFailures, and that it converges.
func TestPlanSimulation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nodes, maxUnavailable, maxFailures int
		failEvery                          int // every n-th Job fails (0: none)
		upgrade, delete                    bool
		drifts                             int // ready nodes that reboot during the rollout
	}{
		{nodes: 1, maxUnavailable: 1, maxFailures: 1},
		{nodes: 10, maxUnavailable: 1, maxFailures: 1},
		{nodes: 50, maxUnavailable: 7, maxFailures: 1},
		{nodes: 100, maxUnavailable: 10, maxFailures: 100, failEvery: 9},
		{nodes: 100, maxUnavailable: 10, maxFailures: 3, failEvery: 4},
		{nodes: 40, maxUnavailable: 5, maxFailures: 1, upgrade: true},
		{nodes: 40, maxUnavailable: 5, maxFailures: 1, delete: true},
		{nodes: 60, maxUnavailable: 4, maxFailures: 1, drifts: 25},
		{nodes: 60, maxUnavailable: 4, maxFailures: 1, upgrade: true, drifts: 25},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(tc.nodes), uint64(tc.maxUnavailable)))
			nodes := make([]Node, tc.nodes)
			for i := range nodes {
				nodes[i] = node(fmt.Sprintf("n%03d", i))
				nodes[i].Runtime = "containerd://2.4.2 boot=0"
				if tc.upgrade || tc.delete {
					nodes[i].State, nodes[i].Hash, nodes[i].InstalledRuntime = ready, "h1", nodes[i].Runtime
				}
			}
			drifts := tc.drifts
			in := input(nodes...)
			in.MaxUnavailable, in.MaxFailures, in.Deleting = tc.maxUnavailable, tc.maxFailures, tc.delete
			if tc.delete {
				in.SpecHash, in.PreviousHash = "h1", "h1"
			}
			jobs := 0
			for step := 0; ; step++ {
				if step > 10*tc.nodes+10 {
					t.Fatalf("no convergence after %d steps", step)
				}
				out := applyPlan(&in)
				if len(out.Restarts) > 0 {
					t.Fatalf("unexpected restarts %+v", out.Restarts)
				}
				var running []*Node
				readyNow := 0
				for i := range in.Nodes {
					n := &in.Nodes[i]
					if n.Install.Phase == JobActive || n.Uninstall.Phase == JobActive {
						running = append(running, n)
					}
					if n.State == ready && n.Hash == in.SpecHash {
						readyNow++
					}
				}
				if len(running) > tc.maxUnavailable {
					t.Fatalf("step %d: %d nodes running Jobs, maxUnavailable %d", step, len(running), tc.maxUnavailable)
				}
				if !tc.delete && readyNow == 0 && len(running) > 1 {
					t.Fatalf("step %d: %d Jobs before the canary succeeded", step, len(running))
				}
				if len(out.Starts) == 0 && len(running) == 0 && (drifts == 0 || readyNow == 0) {
					assertSettled(t, tc.delete, tc.maxFailures, in, out)
					return
				}
				// Reboot a random ready node now and then: it drifts and is repaired through the rollout.
				if drifts > 0 && readyNow > 0 && rng.IntN(3) == 0 {
					for _, i := range rng.Perm(len(in.Nodes)) {
						if n := &in.Nodes[i]; n.State == ready && n.Hash == in.SpecHash {
							n.Runtime = fmt.Sprintf("containerd://2.4.2 boot=%d", step)
							drifts--
							break
						}
					}
				}
				if len(running) == 0 {
					continue
				}
				// Finish a random non-empty subset of the running Jobs.
				rng.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
				for _, n := range running[:1+rng.IntN(len(running))] {
					jobs++
					phase := JobSucceeded
					if tc.failEvery > 0 && jobs%tc.failEvery == 0 {
						phase = JobFailed
					}
					if n.Install.Phase == JobActive {
						n.Install.Phase = phase
					} else {
						n.Uninstall.Phase = phase
					}
				}
				// Finished Jobs whose result was recorded expire (TTL).
				for i := range in.Nodes {
					n := &in.Nodes[i]
					if n.Install.Phase != JobActive && n.State != installing {
						n.Install = Job{}
					}
					if n.Uninstall.Phase != JobActive && n.State != uninstalling {
						n.Uninstall = Job{}
					}
				}
			}
		})
	}
}

// applyPlan plans one reconcile and applies its label changes, Job restarts (the finished Job is
// deleted) and starts to in, as the controller does, and carries the wave size over to the next plan.
func applyPlan(in *Input) Output {
	out := Plan(*in)
	byName := map[string]*Node{}
	for i := range in.Nodes {
		byName[in.Nodes[i].Name] = &in.Nodes[i]
	}
	for _, c := range out.Changes {
		byName[c.Node].State, byName[c.Node].Hash, byName[c.Node].InstalledRuntime = c.State, c.Hash, c.Runtime
	}
	for _, r := range out.Restarts {
		if r.Op == Install {
			byName[r.Node].Install = Job{}
		} else {
			byName[r.Node].Uninstall = Job{}
		}
	}
	for _, s := range out.Starts {
		if s.Op == Install {
			byName[s.Node].Install.Phase = JobActive
		} else {
			byName[s.Node].Uninstall.Phase = JobActive
		}
	}
	in.Wave, in.PreviousHash = out.Wave, in.SpecHash
	return out
}

func assertSettled(t *testing.T, deleting bool, maxFailures int, in Input, out Output) {
	t.Helper()
	nFailed := 0
	for _, n := range in.Nodes {
		switch {
		case n.State == failed:
			nFailed++
		case deleting && (n.State != "" || n.Hash != ""):
			t.Fatalf("node %s still %q/%q after the Shim was deleted", n.Name, n.State, n.Hash)
		case !deleting && (n.State != ready || n.Hash != in.SpecHash) && !out.Paused:
			t.Fatalf("node %s is %q at %q, rollout not paused", n.Name, n.State, n.Hash)
		case !deleting && n.State == ready && n.InstalledRuntime != n.Runtime:
			t.Fatalf("node %s is ready on runtime %q but recorded %q", n.Name, n.Runtime, n.InstalledRuntime)
		}
	}
	if out.Paused != (nFailed > maxFailures && out.Pending > 0) {
		t.Fatalf("paused=%v with %d failures (max %d), %d pending", out.Paused, nFailed, maxFailures, out.Pending)
	}
	if out.Paused && nFailed > maxFailures+in.MaxUnavailable {
		t.Fatalf("%d failures: the pause came too late (max %d + %d in flight)", nFailed, maxFailures, in.MaxUnavailable)
	}
}

// TestUnsupportedSpendsNoFailureBudget: with no failure allowed, two nodes the installer found
// unsupported do not pause the rollout, and count as unsupported; the same two nodes failed (the
// positive control) do pause it.
func TestUnsupportedSpendsNoFailureBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		state  v1alpha1.NodeState
		paused bool
	}{{unsupported, false}, {failed, true}} {
		in := input(node("a", state(tc.state, "")), node("b", state(tc.state, "")), node("c", state(ready, "h2")), node("d"))
		in.MaxFailures = 0
		out := Plan(in)
		if out.Paused != tc.paused || (len(out.Starts) == 1) == tc.paused {
			t.Errorf("%s nodes: paused %v with starts %v, want paused %v", tc.state, out.Paused, out.Starts, tc.paused)
		}
		want := v1alpha1.NodeCounts{Selected: 4, Ready: 1, Installing: int32(len(out.Starts))}
		if tc.state == unsupported {
			want.Unsupported = 2
		} else {
			want.Failed = 2
		}
		if out.Counts != want {
			t.Errorf("%s nodes: counts %+v, want %+v", tc.state, out.Counts, want)
		}
	}
}

// TestPlanSimulationManyShims rolls three Shims out to the same nodes at once: in each step
// every Shim plans in a seeded random order, seeing which nodes another Shim's Job occupies, and some
// Jobs end on a node the installer found locked (reason NodeBusy). It asserts that no node ever runs two
// Jobs, that each Shim's budget counts only its own Jobs, that a locked node is never counted as
// failed, and that every Shim converges.
func TestPlanSimulationManyShims(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 13))
			const nodes = 12
			shims := []string{"spin", "wasmtime", "wazero"}
			budget := map[string]int{"spin": 1, "wasmtime": 3, "wazero": 12}
			views, waves := map[string][]Node{}, map[string]int{}
			for _, s := range shims {
				for i := range nodes {
					views[s] = append(views[s], node(fmt.Sprintf("n%02d", i)))
				}
			}
			for step := 0; ; step++ {
				if step > 50*nodes {
					t.Fatalf("no convergence after %d steps", step)
				}
				order := slices.Clone(shims)
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				active, pending := 0, 0
				for _, s := range order {
					in := input(views[s]...)
					in.MaxUnavailable, in.MaxFailures, in.Wave = budget[s], 0, waves[s]
					for i := range in.Nodes {
						in.Nodes[i].BusyWith = ""
						for _, o := range shims {
							if o != s && views[o][i].Install.Phase == JobActive {
								in.Nodes[i].BusyWith = o
							}
						}
					}
					out := applyPlan(&in)
					waves[s] = in.Wave
					if out.Counts.Failed > 0 {
						t.Fatalf("step %d: %s counts %d failed nodes; only locked nodes ended a Job unsuccessfully", step, s, out.Counts.Failed)
					}
					for _, st := range out.Starts {
						n := in.Nodes[slices.IndexFunc(in.Nodes, func(n Node) bool { return n.Name == st.Node })]
						if n.BusyWith != "" {
							t.Fatalf("step %d: %s started a Job on %s, busy with %s", step, s, st.Node, n.BusyWith)
						}
					}
					own := 0
					for _, n := range in.Nodes {
						if n.Install.Phase == JobActive {
							own++
						}
					}
					if own > budget[s] {
						t.Fatalf("step %d: %s runs %d Jobs, budget %d", step, s, own, budget[s])
					}
					active, pending = active+own, pending+out.Pending
					views[s] = in.Nodes
				}
				for i := range nodes {
					running := 0
					for _, s := range shims {
						if views[s][i].Install.Phase == JobActive {
							running++
						}
					}
					if running > 1 {
						t.Fatalf("step %d: node %d runs %d Jobs at once", step, i, running)
					}
				}
				if active == 0 && pending == 0 {
					for _, s := range shims {
						for _, n := range views[s] {
							if n.State != ready || n.Hash != "h2" {
								t.Fatalf("%s: node %s is %q at %q at the end", s, n.Name, n.State, n.Hash)
							}
						}
					}
					return
				}
				// Finish some running Jobs; one in five found the node locked by a run outside the manager.
				for _, s := range shims {
					for i := range views[s] {
						n := &views[s][i]
						switch {
						case n.Install.Phase != JobActive || rng.IntN(2) == 0:
						case rng.IntN(5) == 0:
							n.Install = Job{Phase: JobFailed, Busy: true}
						default:
							n.Install.Phase = JobSucceeded
						}
						if n.Install.Phase == JobSucceeded && n.State != installing {
							n.Install = Job{} // expired
						}
					}
				}
			}
		})
	}
}
