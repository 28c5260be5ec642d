#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries from their Go modules with the local
# toolchain, into a cache outside the repository: the control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler), the node (kubelet,
# kube-proxy, and CoreDNS from its own module in hack/coredns), kubectl and helm.
# Each binary is built once per pinned version and then reused. Prints the cache
# directory on stdout; build times go to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="v1.35.4"
HELM_VERSION="v3.19.5"
cache="${AIGUILLAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiguillage}"
bin="$cache/bin-$K8S_VERSION"
mkdir -p "$bin"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"

build() {  # build NAME PACKAGE [MODULE-DIR [LDFLAGS]]
  if [ ! -x "$bin/$1" ]; then
    echo "building $1 ($2) ..." >&2
    local began=$SECONDS
    (cd "$here/${3:-k8s}" && go build -trimpath -ldflags "${4:-$ldflags}" -o "$bin/$1.tmp.$$" "$2")
    mv "$bin/$1.tmp.$$" "$bin/$1"  # atomic: a concurrent run never sees half a binary
    echo "built $1 in $((SECONDS - began))s" >&2
  fi
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
build coredns . coredns "-s -w"  # hack/coredns/main.go: CoreDNS with the plugins the node uses
if [ ! -x "$bin/helm" ]; then
  echo "building helm $HELM_VERSION ..." >&2
  GOBIN="$bin/.helm" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$bin/.helm/helm" "$bin/helm"
  rmdir "$bin/.helm"
fi
echo "$bin"
