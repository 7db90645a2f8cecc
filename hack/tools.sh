#!/usr/bin/env bash
# tools.sh installs or builds every external binary wasmkube's tests need and caches each one under
# ${XDG_CACHE_HOME:-$HOME/.cache}/wasmkube/<tool>-<version>/, so a second run costs seconds.
#
#   hack/tools.sh install [TOOL...]   install the named tools (default: all)
#   hack/tools.sh env                 print the environment (VAR=value) that points tests at the tools
#   hack/tools.sh exec -- CMD...      install nothing; run CMD with that environment
#
# Tools: debian (containerd 1.6, runc, CNI plugins, qemu-user-static), containerd, kubernetes, etcd, crictl, kwok, helm,
# staticcheck, controller-gen. Everything is built from the Go module proxy or installed from Debian.
set -euo pipefail

CONTAINERD_VERSION=v2.4.2
KUBERNETES_VERSION=v1.37.2
KUBE_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16
CRICTL_VERSION=v1.36.0
KWOK_VERSION=v0.8.0
HELM_VERSION=v4.3.1
STATICCHECK_VERSION=v0.8.2
CONTROLLER_GEN_VERSION=v0.23.0

CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/wasmkube"
ALL_TOOLS=(debian containerd kubernetes etcd crictl kwok helm staticcheck controller-gen)

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# tool_dir NAME VERSION prints the cache directory of one tool version.
tool_dir() { printf '%s/%s-%s' "$CACHE_DIR" "$1" "$2"; }

# done_marker DIR: a directory counts as installed only once its .complete marker exists, so an
# interrupted build is redone rather than trusted.
is_complete() { [[ -f "$1/.complete" ]]; }
mark_complete() { date -u +%FT%TZ >"$1/.complete"; }

# with_lock NAME CMD... serialises concurrent installs of the same tool (parallel make, two terminals).
with_lock() {
  local name=$1; shift
  mkdir -p "$CACHE_DIR"
  exec {lockfd}>"$CACHE_DIR/.$name.lock"
  flock "$lockfd"
  "$@"
  exec {lockfd}>&-
}

go_env() { GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 "$@"; }

# go_install DIR PKG@VERSION...: plain `go install` for modules without replace directives.
go_install() {
  local dir=$1; shift
  mkdir -p "$dir/bin"
  GOBIN="$dir/bin" GOWORK=off CGO_ENABLED=0 go install "$@"
}

# copy_module MOD VERSION DEST: a writable copy of a module's source, for modules whose replace
# directives make `go install` refuse them.
copy_module() {
  local mod=$1 version=$2 dest=$3 src
  src=$(GOFLAGS=-mod=mod go mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$src" && -d "$src" ]] || die "go mod download $mod@$version gave no source directory"
  rm -rf "$dest"
  cp -r "$src" "$dest"
  chmod -R u+w "$dest"
  rm -rf "$dest/vendor" "$dest/go.work" "$dest/go.work.sum"
}

# drop_replaces DIR: rewrite every replace directive to a plain requirement of the given version.
# Arguments after DIR are "module=version" pairs; replaces of other modules are only dropped.
drop_replaces() {
  local dir=$1; shift
  local args=() pair
  for pair in "$@"; do args+=("-dropreplace=${pair%%=*}" "-require=${pair%%=*}@${pair#*=}"); done
  (cd "$dir" && go mod edit "${args[@]}")
}

# DEBIAN_PACKAGES: containerd 1.6, runc and the CNI plugins for the daemons; iptables and iproute2 (ip) for
# the local cluster's pod network and its cleanup; qemu-user-static (qemu-aarch64-static) to run the arm64
# binaries on an amd64 machine (test/arm64; called explicitly, no binfmt_misc registration is needed).
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins iptables iproute2 qemu-user-static)

install_debian() {
  if command -v runc >/dev/null && command -v iptables >/dev/null && command -v ip >/dev/null &&
    command -v qemu-aarch64-static >/dev/null &&
    [[ -x /usr/bin/containerd && -x /usr/lib/cni/bridge ]] &&
    /usr/bin/containerd --version 2>/dev/null | grep -q ' 1\.6\.'; then
    return 0
  fi
  log "installing Debian packages: ${DEBIAN_PACKAGES[*]}"
  local tmp; tmp=$(mktemp -d)
  TMPDIR=$tmp apt-get update -qq
  TMPDIR=$tmp DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEBIAN_PACKAGES[@]}" >/dev/null
  rm -rf "$tmp"
  # The package starts no daemon here (no systemd), and the tests run their own on private paths.
}

install_containerd() {
  local dir; dir=$(tool_dir containerd "$CONTAINERD_VERSION")
  is_complete "$dir" && return 0
  log "building containerd $CONTAINERD_VERSION, ctr and containerd-shim-runc-v2 (about 3 minutes cold)"
  local m=github.com/containerd/containerd/v2/cmd
  go_install "$dir" "$m/containerd@$CONTAINERD_VERSION" "$m/ctr@$CONTAINERD_VERSION" "$m/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  mark_complete "$dir"
}

install_kubernetes() {
  local dir; dir=$(tool_dir kubernetes "$KUBERNETES_VERSION")
  is_complete "$dir" && return 0
  log "building Kubernetes $KUBERNETES_VERSION: kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, kubectl (about 9 minutes cold)"
  local src="$CACHE_DIR/src/kubernetes-$KUBERNETES_VERSION"
  mkdir -p "$CACHE_DIR/src" "$dir/bin"
  copy_module k8s.io/kubernetes "$KUBERNETES_VERSION" "$src"
  # Every staging replace (./staging/src/k8s.io/X) becomes k8s.io/X at the published staging version,
  # for the modules the kubernetes module requires.
  local pairs=() mod
  while read -r mod; do
    pairs+=("$mod=$KUBE_STAGING_VERSION")
  done < <(cd "$src" && go mod edit -json | sed -n 's/.*"Path": "\(k8s\.io\/[^"]*\)".*/\1/p' | sort -u |
    while read -r m; do grep -q "^[[:space:]]*$m => ./staging" go.mod && echo "$m"; done)
  drop_replaces "$src" "${pairs[@]}"
  local major=${KUBERNETES_VERSION#v}; major=${major%%.*}
  local minor=${KUBERNETES_VERSION#v*.}; minor=${minor%%.*}
  local ldflags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local cmd
  for cmd in kube-apiserver kubelet kube-controller-manager kube-scheduler kubectl; do
    log "  go build ./cmd/$cmd"
    (cd "$src" && go_env go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/bin/$cmd" "./cmd/$cmd")
  done
  rm -rf "$src"
  mark_complete "$dir"
}

install_etcd() {
  local dir; dir=$(tool_dir etcd "$ETCD_VERSION")
  is_complete "$dir" && return 0
  log "building etcd $ETCD_VERSION (about 1 minute cold)"
  local src="$CACHE_DIR/src/etcd-$ETCD_VERSION"
  mkdir -p "$CACHE_DIR/src" "$dir/bin"
  copy_module go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$src"
  drop_replaces "$src" go.etcd.io/etcd/api/v3="$ETCD_VERSION" go.etcd.io/etcd/client/pkg/v3="$ETCD_VERSION" \
    go.etcd.io/etcd/client/v3="$ETCD_VERSION" go.etcd.io/etcd/pkg/v3="$ETCD_VERSION"
  (cd "$src" && go_env go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" .)
  rm -rf "$src"
  mark_complete "$dir"
}

install_crictl() {
  local dir; dir=$(tool_dir crictl "$CRICTL_VERSION")
  is_complete "$dir" && return 0
  log "building crictl $CRICTL_VERSION"
  local src="$CACHE_DIR/src/cri-tools-$CRICTL_VERSION"
  mkdir -p "$CACHE_DIR/src" "$dir/bin"
  copy_module sigs.k8s.io/cri-tools "$CRICTL_VERSION" "$src"
  local reps
  reps=$(cd "$src" && go mod edit -json | sed -n '/"Replace"/,$p' | sed -n 's/.*"Path": "\([^"]*\)".*/\1/p' | sort -u)
  local args=() m
  for m in $reps; do args+=("-dropreplace=$m"); done
  ((${#args[@]})) && (cd "$src" && go mod edit "${args[@]}")
  (cd "$src" && go_env go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" -o "$dir/bin/crictl" ./cmd/crictl)
  rm -rf "$src"
  mark_complete "$dir"
}

install_kwok() {
  local dir; dir=$(tool_dir kwok "$KWOK_VERSION")
  is_complete "$dir" && return 0
  log "building kwok and kwokctl $KWOK_VERSION"
  go_install "$dir" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  # The stage definitions ship in the module; keep a copy beside the binaries.
  local mod; mod=$(GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$dir/stage"; cp -r "$mod/kustomize/stage" "$dir/stage"; chmod -R u+w "$dir/stage"
  mark_complete "$dir"
}

install_helm() {
  local dir; dir=$(tool_dir helm "$HELM_VERSION")
  is_complete "$dir" && return 0
  log "building helm $HELM_VERSION"
  go_install "$dir" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mark_complete "$dir"
}

install_staticcheck() {
  local dir; dir=$(tool_dir staticcheck "$STATICCHECK_VERSION")
  is_complete "$dir" && return 0
  log "building staticcheck $STATICCHECK_VERSION"
  go_install "$dir" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  mark_complete "$dir"
}

install_controller_gen() {
  local dir; dir=$(tool_dir controller-gen "$CONTROLLER_GEN_VERSION")
  is_complete "$dir" && return 0
  log "building controller-gen $CONTROLLER_GEN_VERSION"
  go_install "$dir" "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION"
  mark_complete "$dir"
}

print_env() {
  local k8s etcd
  k8s=$(tool_dir kubernetes "$KUBERNETES_VERSION")/bin
  etcd=$(tool_dir etcd "$ETCD_VERSION")/bin
  # envtest wants kube-apiserver and etcd side by side.
  local assets="$CACHE_DIR/envtest-$KUBERNETES_VERSION-$ETCD_VERSION"
  if [[ -x $k8s/kube-apiserver && -x $etcd/etcd && ! -e $assets/etcd ]]; then
    mkdir -p "$assets"
    ln -sf "$k8s/kube-apiserver" "$assets/kube-apiserver"
    ln -sf "$etcd/etcd" "$assets/etcd"
  fi
  cat <<ENV
WASMKUBE_CACHE_DIR=$CACHE_DIR
WASMKUBE_CONTAINERD1=/usr/bin/containerd
WASMKUBE_CONTAINERD2_DIR=$(tool_dir containerd "$CONTAINERD_VERSION")/bin
WASMKUBE_RUNC=$(command -v runc || echo /usr/sbin/runc)
WASMKUBE_CNI_DIR=/usr/lib/cni
WASMKUBE_QEMU_AARCH64=$(command -v qemu-aarch64-static || echo /usr/bin/qemu-aarch64-static)
WASMKUBE_KUBE_DIR=$k8s
WASMKUBE_ETCD=$etcd/etcd
KUBEBUILDER_ASSETS=$assets
WASMKUBE_CRICTL=$(tool_dir crictl "$CRICTL_VERSION")/bin/crictl
WASMKUBE_KWOK_DIR=$(tool_dir kwok "$KWOK_VERSION")
WASMKUBE_HELM=$(tool_dir helm "$HELM_VERSION")/bin/helm
WASMKUBE_STATICCHECK=$(tool_dir staticcheck "$STATICCHECK_VERSION")/bin/staticcheck
WASMKUBE_CONTROLLER_GEN=$(tool_dir controller-gen "$CONTROLLER_GEN_VERSION")/bin/controller-gen
ENV
}

main() {
  local cmd=${1:-install}; shift || true
  case $cmd in
  install)
    local tools=("$@"); ((${#tools[@]})) || tools=("${ALL_TOOLS[@]}")
    local t
    for t in "${tools[@]}"; do
      declare -F "install_${t//-/_}" >/dev/null || die "unknown tool $t (known: ${ALL_TOOLS[*]})"
      with_lock "$t" "install_${t//-/_}"
    done
    ;;
  env) print_env ;;
  exec)
    [[ ${1:-} == -- ]] && shift
    (($#)) || die "exec needs a command"
    local line
    while IFS= read -r line; do export "${line?}"; done < <(print_env)
    exec "$@"
    ;;
  *) die "unknown command $cmd (install, env, exec)" ;;
  esac
}

main "$@"
