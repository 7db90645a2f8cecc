package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status is a snapshot of a running (or half-dead) cluster.
type Status struct {
	// Components lists every recorded process and, last, the current supervised containerd.
	Components []ComponentStatus
	// APIServer is nil when /readyz answers ok, else why not.
	APIServer error
	// NodeReady tells whether the node's Ready condition is True; RuntimeHandlers are the handlers in
	// its status.runtimeHandlers ("" is the default one).
	NodeReady       bool
	RuntimeHandlers []string
}

// ComponentStatus is one process of the cluster.
type ComponentStatus struct {
	Name    string
	PID     int
	Running bool
}

// Healthy reports whether every component runs, the apiserver is ready and the node is Ready.
func (s Status) Healthy() bool {
	return s.APIServer == nil && s.NodeReady && !slices.ContainsFunc(s.Components, func(c ComponentStatus) bool { return !c.Running })
}

// Status checks the processes, the apiserver and the node.
func (c *Cluster) Status(ctx context.Context) Status {
	var s Status
	for _, p := range c.state.Processes {
		s.Components = append(s.Components, ComponentStatus{Name: p.Name, PID: p.PID, Running: p.Alive()})
	}
	cs := ComponentStatus{Name: containerdProcessName}
	if procs, err := c.ContainerdProcesses(); err == nil && len(procs) == 1 {
		cs.PID, cs.Running = procs[0].PID, true
	}
	s.Components = append(s.Components, cs)

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, err := c.Clientset()
	if err != nil {
		s.APIServer = err
		return s
	}
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		s.APIServer = fmt.Errorf("GET /readyz: %w", err)
		return s
	}
	node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName(), metav1.GetOptions{})
	if err != nil {
		return s
	}
	s.NodeReady = NodeReady(node)
	for _, h := range node.Status.RuntimeHandlers {
		s.RuntimeHandlers = append(s.RuntimeHandlers, h.Name)
	}
	return s
}

// healthy reports whether a component's /healthz on 127.0.0.1:port answers 200. The components
// serve it with a self-signed certificate and allow it without authentication.
func healthy(ctx context.Context, port int) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil)
	if err != nil {
		return false
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // a loopback probe of a self-signed server
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
