#!/usr/bin/env bash
# Runs wasmkube's end-to-end test (test/e2e) on a kind cluster: creates the cluster, builds the
# manager and node-installer images for this machine's architecture, loads them with
# `kind load image-archive`, and runs `go test ./test/e2e` with KUBECONFIG pointing at the cluster.
#
# Environment: KIND (kind binary, default kind), HELM (helm binary, default helm),
# KIND_CLUSTER (default wasmkube-e2e), KIND_NODE_IMAGE (optional node image),
# KEEP_CLUSTER=1 leaves the cluster running afterwards.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
kind=${KIND:-kind}
helm=${HELM:-helm}
cluster=${KIND_CLUSTER:-wasmkube-e2e}
out="$root/_output/e2e-kind"
kubeconfig="$out/kubeconfig"

case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "run.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

cleanup() {
  if [[ "${KEEP_CLUSTER:-}" != 1 ]]; then
    "$kind" delete cluster --name "$cluster" || true
  fi
}

mkdir -p "$out"
create=(create cluster --name "$cluster" --config "$root/test/kind/kind.yaml" --kubeconfig "$kubeconfig" --wait 5m)
if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
  create+=(--image "$KIND_NODE_IMAGE")
fi
echo "==> kind ${create[*]}"
"$kind" "${create[@]}"
trap cleanup EXIT

echo "==> building images for linux/$arch"
(cd "$root" && go run ./images/build build --registry wasmkube.test --tag e2e --platform "linux/$arch" --out "$out/images")
for image in wasmkube-manager wasmkube-node-installer; do
  echo "==> kind load image-archive $image"
  "$kind" load image-archive --name "$cluster" "$out/images/$image-linux-$arch.tar"
done

echo "==> go test ./test/e2e"
cd "$root"
KUBECONFIG="$kubeconfig" WASMKUBE_E2E_EXISTING_CLUSTER=1 WASMKUBE_HELM="$(command -v "$helm")" \
  WASMKUBE_E2E_LOAD="$(command -v "$kind") load image-archive --name $cluster" \
  go test -count=1 -timeout 30m -v ./test/e2e/
