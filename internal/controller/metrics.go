package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// Metrics are the manager's Prometheus metrics.
type Metrics struct {
	// Operations counts finished node Jobs by Shim, operation (install, uninstall) and result
	// (success, failure, unsupported).
	Operations *prometheus.CounterVec
	// Duration observes how long node Jobs took, by Shim and operation.
	Duration *prometheus.HistogramVec
	// Nodes is the number of nodes per Shim and state (selected, ready, drifted, installing, failed,
	// unsupported, uninstalling).
	Nodes *prometheus.GaugeVec
	// Drifts counts ready nodes found drifted, by Shim and cause (handler, runtime, reboot, verify).
	Drifts *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (controller-runtime's metrics.Registry in
// the manager).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmkube_node_operations_total",
			Help: "Finished node install/uninstall Jobs by Shim, operation and result.",
		}, []string{"shim", "operation", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wasmkube_node_operation_duration_seconds",
			Help:    "Duration of node install/uninstall Jobs by Shim and operation.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"shim", "operation"}),
		Nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wasmkube_nodes",
			Help: "Nodes per Shim by state.",
		}, []string{"shim", "state"}),
		Drifts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmkube_node_drifts_total",
			Help: "Ready nodes found no longer serving the handler, by Shim and cause (handler, runtime, reboot, verify).",
		}, []string{"shim", "cause"}),
	}
	for _, c := range []prometheus.Collector{m.Operations, m.Duration, m.Nodes, m.Drifts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) setNodes(shim string, c v1alpha1.NodeCounts) {
	for state, n := range map[string]int32{"selected": c.Selected, "ready": c.Ready, "drifted": c.Drifted, "installing": c.Installing,
		"failed": c.Failed, "unsupported": c.Unsupported, "uninstalling": c.Uninstalling} {
		m.Nodes.WithLabelValues(shim, state).Set(float64(n))
	}
}

func (m *Metrics) forget(shim string) {
	m.Operations.DeletePartialMatch(prometheus.Labels{"shim": shim})
	m.Duration.DeletePartialMatch(prometheus.Labels{"shim": shim})
	m.Nodes.DeletePartialMatch(prometheus.Labels{"shim": shim})
	m.Drifts.DeletePartialMatch(prometheus.Labels{"shim": shim})
}
