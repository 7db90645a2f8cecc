// Package chart tests the Helm chart in charts/wasmkube with the real helm binary (v4, built by
// hack/tools.sh): lint, golden renderings of `helm template` (refresh with `go test ./test/chart -update`),
// values that the schema or the templates must refuse, the rendered contract with the manager (its
// real flags, its generated RBAC), and `helm install` into a real kube-apiserver (envtest) followed by
// SubjectAccessReviews of the manager's ServiceAccount.
package chart
