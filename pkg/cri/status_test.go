package cri

import (
	"reflect"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestParseStatus(t *testing.T) {
	t.Parallel()
	ready := []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: false, Reason: "NetworkPluginNotReady", Message: "cni config uninitialized"},
	}
	tests := map[string]struct {
		resp    *runtimeapi.StatusResponse
		want    map[string]Handler
		runtime bool
		network bool
		wantErr bool
	}{
		"containerd 2.x: runtimeHandlers and config": {
			resp: &runtimeapi.StatusResponse{
				Status:          &runtimeapi.RuntimeStatus{Conditions: ready},
				RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: ""}, {Name: "runc"}, {Name: "wazero"}},
				Info:            map[string]string{"config": `{"containerd":{"runtimes":{"runc":{"runtimeType":"io.containerd.runc.v2"}}}}`},
			},
			want:    map[string]Handler{"runc": {Type: "io.containerd.runc.v2"}, "wazero": {}},
			runtime: true,
		},
		"containerd 1.6: only the verbose config": {
			resp: &runtimeapi.StatusResponse{
				Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
					{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true},
				}},
				Info: map[string]string{"config": `{"containerd":{"defaultRuntimeName":"runc","runtimes":{"runc":{"runtimeType":"io.containerd.runc.v2"},"spin":{"runtimeType":"/opt/wasmkube/bin/containerd-shim-spin-v2"}}}}`},
			},
			want:    map[string]Handler{"runc": {Type: "io.containerd.runc.v2"}, "spin": {Type: "/opt/wasmkube/bin/containerd-shim-spin-v2"}},
			runtime: true,
			network: true,
		},
		"not verbose, runtime down": {
			resp: &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{{Type: runtimeapi.RuntimeReady, Status: false}}}},
			want: map[string]Handler{},
		},
		"empty response": {resp: &runtimeapi.StatusResponse{}, want: map[string]Handler{}},
		"bad config JSON": {
			resp:    &runtimeapi.StatusResponse{Info: map[string]string{"config": `{"containerd":`}},
			wantErr: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st, err := parseStatus(tc.resp)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStatus() error = %v, want error %t", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(st.Handlers, tc.want) || st.RuntimeReady != tc.runtime || st.NetworkReady != tc.network {
				t.Errorf("parseStatus() = %s %v, want handlers %v runtime %t network %t", st, st.Handlers, tc.want, tc.runtime, tc.network)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	t.Parallel()
	st := &Status{RuntimeReady: true, Handlers: map[string]Handler{"b": {}, "a": {}}, Conditions: []Condition{
		{Type: "RuntimeReady", Status: true},
		{Type: "NetworkReady", Status: false, Reason: "NetworkPluginNotReady", Message: "cni config uninitialized"},
	}}
	want := "RuntimeReady=true NetworkReady=false handlers=[a b]; NetworkReady: NetworkPluginNotReady cni config uninitialized"
	if got := st.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (*Status)(nil).String(); got != "no status" {
		t.Errorf("nil String() = %q", got)
	}
}
