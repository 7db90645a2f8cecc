// Package v1alpha1 is the contract between the manager and the node-installer Job it runs on a node:
// the values the manager may pass to the installer (RestartMethod) and the JSON Result the installer
// writes to stdout and to the pod's termination message, with its reasons and exit codes. The manager
// reads results through this package only and imports nothing of the installer itself; changing a
// field name or a reason here changes what a running manager understands, so it is versioned like an
// API.
package v1alpha1
