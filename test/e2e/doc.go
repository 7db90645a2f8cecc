// Package e2e holds wasmkube's end-to-end test and the steps it shares with `make demo`: build the
// manager and node-installer images for the host platform, import them into the node, install the
// chart with helm, and wait for the manager. The test runs against a local cluster it starts
// (test/cluster) or, when KUBECONFIG is set and WASMKUBE_E2E_EXISTING_CLUSTER=1, against an existing
// cluster whose node holds the images (test/kind/run.sh). `make test` runs it; `make e2e` runs it alone.
package e2e
