// Package v1alpha1 holds the wasmkube.io/v1alpha1 API: the cluster-scoped Shim, which asks the manager
// to install one containerd shim on a set of nodes and to publish a RuntimeClass for it, plus the names
// (node labels, annotations, condition types and reasons) that the manager and users share.
//
// +kubebuilder:object:generate=true
// +groupName=wasmkube.io
package v1alpha1
