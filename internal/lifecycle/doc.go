// Package lifecycle is what the Helm chart's hooks run, as subcommands of the manager binary:
//
//   - before `helm uninstall` removes the manager (pre-delete), DeleteShims deletes every Shim and waits,
//     bounded, until the still-running manager has uninstalled each from its nodes and released it, so
//     that every node's containerd config is as it was before wasmkube; on timeout it says which Shims
//     and nodes are left and what to do;
//   - before `helm upgrade` applies the new templates (pre-upgrade), ApplyCRDs server-side applies the
//     chart's CRDs, which Helm itself installs from crds/ only once.
package lifecycle
