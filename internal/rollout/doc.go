// Package rollout holds the manager's pure decisions: which nodes a Shim selects, which platforms it can
// serve, the spec hash and Job names, the rollout budget, and Plan, which turns the observed state of
// every node into the label changes and Jobs of one reconcile. Nothing here talks to the API server.
package rollout
