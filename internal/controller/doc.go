// Package controller holds the manager's reconciler for Shims: it selects nodes, runs one install or
// uninstall Job per (Shim, node) within the rollout budget, reads each Job's result from its pod's
// termination message, labels nodes with their state, publishes the Shim's RuntimeClass, and reports
// status, Events and metrics. The decisions themselves are pure functions in internal/rollout.
package controller

// Cluster-wide permissions.
// +kubebuilder:rbac:groups=wasmkube.io,resources=shims,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=wasmkube.io,resources=shims/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=wasmkube.io,resources=shims/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=node.k8s.io,resources=runtimeclasses,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch;update

// Permissions in the manager's namespace (the Helm chart renders the Role into its release namespace).
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete,namespace=wasmkube-system
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch,namespace=wasmkube-system
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,namespace=wasmkube-system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete,namespace=wasmkube-system
