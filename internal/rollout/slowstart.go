package rollout

import "github.com/wasmkube/wasmkube/api/v1alpha1"

// Slow start: how many nodes may be in flight at once grows with evidence that the spec works. Each
// round of work (a new spec, or nodes to install or uninstall after the rollout was idle) starts with a
// wave of one node (for a new spec, the canary). Every node that succeeds adds one to the wave size, so
// a wave whose nodes all succeed doubles it (1, 2, 4, 8, ...), up to maxUnavailable. A node that fails
// drops it back to 1; nodes already running finish, and no new Job starts until fewer than one runs.
// Jobs are not held until a whole wave has finished: each success frees its own slot and adds one, so
// a slow wave member does not stall the others.

// nextWave returns the wave size for this plan: prev carries over from the last plan unless a new round
// of work starts (the spec changed, nothing was in flight, or prev is unknown), then this plan's results
// grow it or drop it back to 1, and maxUnavailable caps it.
func nextWave(in Input, idle bool, changes []Change) int {
	wave := in.Wave
	if wave < 1 || idle || in.PreviousHash != in.SpecHash {
		wave = 1
	}
	successes, failures := results(changes)
	if failures > 0 {
		wave = 1
	} else {
		wave += successes
	}
	return max(1, min(wave, in.MaxUnavailable))
}

// results counts the nodes a plan moves to a result: ready or uninstalled (successes), or failed.
// A node found unsupported is neither: its Job tells nothing about the spec.
func results(changes []Change) (successes, failures int) {
	for _, c := range changes {
		switch {
		case Success(c):
			successes++
		case c.Event != nil && c.State == v1alpha1.NodeFailed:
			failures++
		}
	}
	return successes, failures
}

// Success reports whether a change reports a successful install (ready) or uninstall (label removed).
func Success(c Change) bool {
	return c.Event != nil && (c.State == v1alpha1.NodeReady || c.State == "")
}

// inFlight reports whether a node is in the middle of an operation as the plan begins: a Job of the
// Shim runs there, or its label says installing or uninstalling (a Job that is about to start again,
// or whose result has not been recorded yet).
func inFlight(n *Node) bool {
	return n.OtherActive || n.Install.Phase == JobActive || n.Uninstall.Phase == JobActive ||
		n.State == v1alpha1.NodeInstalling || n.State == v1alpha1.NodeUninstalling
}
