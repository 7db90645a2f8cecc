package rollout

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPlanSlowStart runs whole rollouts in which every running Job finishes between two reconciles, so
// each step is one wave, and compares the waves with what slow start promises. Each step is written as
// "nodes in flight/wave size" after the plan: the canary runs alone; each fully successful wave doubles
// the next (growth on success) up to maxUnavailable; a failure drops the wave back to 1 (fallback); a
// failure beyond maxFailures pauses the rollout (no more starts); nothing ever runs beyond
// maxUnavailable. `go test -v -run TestPlanSlowStart` prints the waves.
func TestPlanSlowStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                                string
		nodes, maxUnavailable, maxFailures  int
		fail                                []string
		upgrade, deleting                   bool
		joined                              int // nodes selected after a completed rollout
		waves                               string
		paused                              bool
		wantReady, wantFailed, wantNoLabels int
	}{{
		name: "growth on success", nodes: 100, maxUnavailable: 20, maxFailures: 1,
		waves:     "1/1 2/2 4/4 8/8 16/16 20/20 20/20 20/20 9/20",
		wantReady: 100,
	}, {
		name: "fallback to 1 on a failure, then growth again", nodes: 100, maxUnavailable: 20, maxFailures: 3,
		fail:      []string{"n010"},
		waves:     "1/1 2/2 4/4 8/8 1/1 2/2 4/4 8/8 16/16 20/20 20/20 14/20",
		wantReady: 99, wantFailed: 1,
	}, {
		name: "pause when failures exceed maxFailures", nodes: 100, maxUnavailable: 20, maxFailures: 1,
		fail:      []string{"n005", "n020"},
		waves:     "1/1 2/2 4/4 1/1 2/2 4/4 8/8",
		paused:    true,
		wantReady: 20, wantFailed: 2, wantNoLabels: 78, // 78 nodes wait
	}, {
		name: "an upgrade starts a new slow start", nodes: 40, maxUnavailable: 40, maxFailures: 1, upgrade: true,
		waves:     "1/1 2/2 4/4 8/8 16/16 9/32",
		wantReady: 40,
	}, {
		name: "uninstalls of a deleted Shim start slowly too", nodes: 40, maxUnavailable: 10, maxFailures: 1, deleting: true,
		waves:        "1/1 2/2 4/4 8/8 10/10 10/10 5/10",
		wantNoLabels: 40,
	}, {
		name: "nodes joining after the rollout start a new round with one node", nodes: 30, maxUnavailable: 20, maxFailures: 1, joined: 10,
		waves:     "1/1 2/2 4/4 3/8",
		wantReady: 40,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nodes := make([]Node, tc.nodes)
			for i := range nodes {
				nodes[i] = node(fmt.Sprintf("n%03d", i))
				if tc.upgrade || tc.deleting || tc.joined > 0 {
					nodes[i].State, nodes[i].Hash = ready, "h1"
				}
			}
			in := input(nodes...)
			in.MaxUnavailable, in.MaxFailures, in.Deleting = tc.maxUnavailable, tc.maxFailures, tc.deleting
			if tc.deleting || tc.joined > 0 {
				in.SpecHash, in.PreviousHash = "h1", "h1"
				// The last rollout ended with the wave at its largest.
				in.Wave = tc.maxUnavailable
			}
			for i := range tc.joined {
				in.Nodes = append(in.Nodes, node(fmt.Sprintf("z%03d", i)))
			}
			var waves []string
			var out Output
			for step := 0; ; step++ {
				if step > 100 {
					t.Fatalf("no end after %d steps: %s", step, strings.Join(waves, " "))
				}
				out = applyPlan(&in)
				running := runningJobs(in.Nodes)
				if len(running) > tc.maxUnavailable {
					t.Fatalf("step %d: %d nodes in flight, maxUnavailable %d", step, len(running), tc.maxUnavailable)
				}
				if len(running) == 0 {
					break
				}
				waves = append(waves, fmt.Sprintf("%d/%d", len(running), out.Wave))
				for _, n := range running {
					finish(n, slices.Contains(tc.fail, n.Name))
				}
				expireRecorded(in.Nodes)
			}
			t.Logf("waves (in flight/wave size): %s; paused %t", strings.Join(waves, " "), out.Paused)
			if got := strings.Join(waves, " "); got != tc.waves {
				t.Errorf("waves\n got %s\nwant %s", got, tc.waves)
			}
			var nReady, nFailed, noLabels int
			for _, n := range in.Nodes {
				switch {
				case n.State == ready && n.Hash == in.SpecHash:
					nReady++
				case n.State == failed:
					nFailed++
				case n.State == "" && n.Hash == "":
					noLabels++
				}
			}
			if out.Paused != tc.paused || nReady != tc.wantReady || nFailed != tc.wantFailed || noLabels != tc.wantNoLabels {
				t.Errorf("paused %t, %d ready, %d failed, %d without labels; want paused %t, %d, %d, %d",
					out.Paused, nReady, nFailed, noLabels, tc.paused, tc.wantReady, tc.wantFailed, tc.wantNoLabels)
			}
		})
	}
}

// TestPlanSlowStartRandom runs seeded random rollouts in which any subset of the running Jobs finishes
// between two reconciles (Jobs overlap waves) and some fail. Every step it checks: never more nodes in
// flight than maxUnavailable, and no new Job beyond the wave size; the wave grows by at most one per
// success since the last plan and is back to 1 after any failure; one node at a time until the canary
// succeeded; and the rollout ends complete, or paused exactly when failures exceed maxFailures.
func TestPlanSlowStartRandom(t *testing.T) {
	t.Parallel()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 17))
		nodes, maxUnavailable, maxFailures := 20+rng.IntN(80), 1+rng.IntN(40), rng.IntN(4)
		t.Run(fmt.Sprintf("seed %d: %d nodes, maxUnavailable %d, maxFailures %d", seed, nodes, maxUnavailable, maxFailures), func(t *testing.T) {
			t.Parallel()
			ns := make([]Node, nodes)
			for i := range ns {
				ns[i] = node(fmt.Sprintf("n%03d", i))
			}
			in := input(ns...)
			in.MaxUnavailable, in.MaxFailures = maxUnavailable, maxFailures
			successes, failures, anyReady := 0, 0, false
			var waves []int
			for step := 0; ; step++ {
				if step > 20*nodes {
					t.Fatalf("no end after %d steps", step)
				}
				prev := max(in.Wave, 1)
				out := applyPlan(&in)
				running := runningJobs(in.Nodes)
				waves = append(waves, out.Wave)
				for _, n := range in.Nodes {
					anyReady = anyReady || n.State == ready
				}
				switch {
				case len(running) > maxUnavailable:
					t.Fatalf("step %d: %d nodes in flight, maxUnavailable %d", step, len(running), maxUnavailable)
				case len(out.Starts) > 0 && len(running) > out.Wave:
					t.Fatalf("step %d: started %d Jobs, %d in flight, beyond the wave of %d", step, len(out.Starts), len(running), out.Wave)
				case failures > 0 && out.Wave != 1:
					t.Fatalf("step %d: wave %d after a failure, want 1", step, out.Wave)
				case failures == 0 && out.Wave > prev+successes:
					t.Fatalf("step %d: wave %d grew from %d by more than the %d successes", step, out.Wave, prev, successes)
				case !anyReady && len(running) > 1:
					t.Fatalf("step %d: %d nodes in flight before the canary succeeded", step, len(running))
				}
				if len(running) == 0 {
					assertSettled(t, false, maxFailures, in, out)
					t.Logf("waves: %v", waves)
					return
				}
				successes, failures = 0, 0
				rng.Shuffle(len(running), func(i, j int) { running[i], running[j] = running[j], running[i] })
				for _, n := range running[:1+rng.IntN(len(running))] {
					fails := rng.IntN(25) == 0
					finish(n, fails)
					if fails {
						failures++
					} else {
						successes++
					}
				}
				expireRecorded(in.Nodes)
			}
		})
	}
}

// runningJobs returns the nodes with a running Job.
func runningJobs(nodes []Node) []*Node {
	var out []*Node
	for i := range nodes {
		if n := &nodes[i]; n.Install.Phase == JobActive || n.Uninstall.Phase == JobActive {
			out = append(out, n)
		}
	}
	return out
}

// finish ends a node's running Job.
func finish(n *Node, fails bool) {
	phase := JobSucceeded
	if fails {
		phase = JobFailed
	}
	if n.Install.Phase == JobActive {
		n.Install.Phase = phase
	} else {
		n.Uninstall.Phase = phase
	}
}

// expireRecorded drops finished Jobs whose result the labels have recorded (their TTL).
func expireRecorded(nodes []Node) {
	for i := range nodes {
		n := &nodes[i]
		if n.Install.Phase != JobActive && n.State != installing {
			n.Install = Job{}
		}
		if n.Uninstall.Phase != JobActive && n.State != uninstalling {
			n.Uninstall = Job{}
		}
	}
}
