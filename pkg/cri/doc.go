// Package cri is a small client for a container runtime's CRI socket (k8s.io/cri-api over gRPC on a
// unix socket). It answers the questions the node installer and the tests ask after touching
// containerd: is the runtime ready, is the network ready, and which runtime handlers are registered.
//
// containerd 2.x lists its handlers in StatusResponse.runtimeHandlers; containerd 1.6 does not, but its
// verbose status carries the CRI plugin's configuration as JSON under info["config"], whose
// containerd.runtimes table names them. Status reads both.
package cri
