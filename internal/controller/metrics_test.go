package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.setNodes("spin", v1alpha1.NodeCounts{Selected: 4, Ready: 2, Drifted: 1, Failed: 1})
	m.Operations.WithLabelValues("spin", "install", "success").Inc()
	m.Drifts.WithLabelValues("spin", "reboot").Inc()
	m.Duration.WithLabelValues("spin", "install").Observe(1.5)
	got := gather(t, reg)
	for name, want := range map[string]float64{
		`wasmkube_nodes{shim="spin",state="ready"}`:                                        2,
		`wasmkube_nodes{shim="spin",state="failed"}`:                                       1,
		`wasmkube_nodes{shim="spin",state="drifted"}`:                                      1,
		`wasmkube_node_drifts_total{cause="reboot",shim="spin"}`:                           1,
		`wasmkube_node_operations_total{operation="install",result="success",shim="spin"}`: 1,
		`wasmkube_node_operation_duration_seconds_count{operation="install",shim="spin"}`:  1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	m.forget("spin")
	if got := gather(t, reg); len(got) != 0 {
		t.Errorf("series left after forget: %v", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice: want an error")
	}
}

// gather flattens a registry into "name{labels}" -> value (histograms: their count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			labels := ""
			for _, l := range m.GetLabel() {
				if labels != "" {
					labels += ","
				}
				labels += l.GetName() + `="` + l.GetValue() + `"`
			}
			switch {
			case m.GetHistogram() != nil:
				out[key+"_count{"+labels+"}"] = float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				out[key+"{"+labels+"}"] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key+"{"+labels+"}"] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
