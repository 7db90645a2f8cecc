package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// DeleteOptions bound DeleteShims.
type DeleteOptions struct {
	// Timeout is how long to wait for the Shims to be gone.
	Timeout time.Duration
	// Interval is how often to look, and Report how often to print progress (defaults 2 s and 15 s).
	Interval, Report time.Duration
	// Out receives progress and the final report.
	Out io.Writer
}

// ErrShimsLeft means Shims were still there when DeleteShims gave up.
var ErrShimsLeft = errors.New("the uninstall of the Shims did not finish")

// DeleteShims deletes every Shim and waits until all are gone: the manager's finalizer holds each Shim
// until its uninstall Jobs have restored every node. It fails with ErrShimsLeft after opts.Timeout,
// naming each Shim left, its nodes by state and its Degraded condition.
func DeleteShims(ctx context.Context, c client.Client, opts DeleteOptions) error {
	interval, report := opts.Interval, opts.Report
	if interval == 0 {
		interval = 2 * time.Second
	}
	if report == 0 {
		report = 15 * time.Second
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	var list v1alpha1.ShimList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("list Shims: %w", err)
	}
	start := time.Now()
	for i := range list.Items {
		s := &list.Items[i]
		if err := c.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Shim %s: %w", s.Name, err)
		}
	}
	fmt.Fprintf(out, "deleted %d Shims; waiting up to %s for the manager to uninstall them from the nodes\n", len(list.Items), opts.Timeout)

	deadline := time.NewTimer(opts.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastReport := start
	for {
		left, err := remaining(ctx, c)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			fmt.Fprintf(out, "every Shim is uninstalled (%s)\n", time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(lastReport) >= report {
			fmt.Fprintf(out, "after %s, still uninstalling: %s\n", time.Since(start).Round(time.Second), brief(left))
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			fmt.Fprintf(out, "gave up after %s; left:\n%s", opts.Timeout, describe(left))
			return fmt.Errorf("%w after %s: %s; the nodes listed keep their containerd config until the manager finishes (it is still running: helm uninstall stopped before removing it). Fix what the Shims' conditions say and run helm uninstall again, or raise the hook's timeout; helm uninstall --no-hooks would leave these nodes patched", ErrShimsLeft, opts.Timeout, brief(left))
		case <-tick.C:
		}
	}
}

// shimLeft is a Shim still present, with its nodes by state.
type shimLeft struct {
	shim  v1alpha1.Shim
	nodes map[v1alpha1.NodeState][]string
}

// remaining lists the Shims left and the nodes that still carry their state label.
func remaining(ctx context.Context, c client.Client) ([]shimLeft, error) {
	var list v1alpha1.ShimList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list Shims: %w", err)
	}
	var out []shimLeft
	for _, s := range list.Items {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes, client.HasLabels{v1alpha1.NodeStateLabel(s.Name)}); err != nil {
			return nil, fmt.Errorf("list the nodes of Shim %s: %w", s.Name, err)
		}
		l := shimLeft{shim: s, nodes: map[v1alpha1.NodeState][]string{}}
		for _, n := range nodes.Items {
			st := v1alpha1.NodeState(n.Labels[v1alpha1.NodeStateLabel(s.Name)])
			l.nodes[st] = append(l.nodes[st], n.Name)
		}
		out = append(out, l)
	}
	return out, nil
}

// brief is one line: "wazero (2 nodes: 1 uninstalling, 1 failed), spin (0 nodes)".
func brief(left []shimLeft) string {
	parts := make([]string, 0, len(left))
	for _, l := range left {
		n := 0
		var states []string
		for _, st := range sortedStates(l.nodes) {
			n += len(l.nodes[st])
			states = append(states, fmt.Sprintf("%d %s", len(l.nodes[st]), st))
		}
		p := fmt.Sprintf("%s (%d nodes", l.shim.Name, n)
		if len(states) > 0 {
			p += ": " + strings.Join(states, ", ")
		}
		parts = append(parts, p+")")
	}
	return strings.Join(parts, ", ")
}

// describe is the report on timeout: per Shim, its nodes by state (up to 20 names each) and why it is
// stuck, as far as its status says.
func describe(left []shimLeft) string {
	var b strings.Builder
	for _, l := range left {
		fmt.Fprintf(&b, "  Shim %s:\n", l.shim.Name)
		if len(l.nodes) == 0 {
			b.WriteString("    no node carries its label; the manager has not released it (is the manager running?)\n")
		}
		for _, st := range sortedStates(l.nodes) {
			names := l.nodes[st]
			more := ""
			if len(names) > 20 {
				names, more = names[:20], fmt.Sprintf(" and %d more", len(names)-20)
			}
			fmt.Fprintf(&b, "    %s: %s%s\n", st, strings.Join(names, ", "), more)
		}
		for _, t := range []string{v1alpha1.ConditionDegraded, v1alpha1.ConditionProgressing} {
			if c := meta.FindStatusCondition(l.shim.Status.Conditions, t); c != nil && c.Status == "True" {
				fmt.Fprintf(&b, "    %s: %s: %s\n", t, c.Reason, c.Message)
			}
		}
	}
	return b.String()
}

func sortedStates(m map[v1alpha1.NodeState][]string) []v1alpha1.NodeState {
	out := make([]v1alpha1.NodeState, 0, len(m))
	for st := range m {
		out = append(out, st)
	}
	slices.Sort(out)
	return out
}
