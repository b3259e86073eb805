#!/usr/bin/env bash
# A single-node Kubernetes cluster with a real kubelet, made by kind on a node image built here from package
# registries alone (scripts/kind-node.sh: no container registry anywhere), on the project's own docker daemon
# (scripts/docker.sh), never on another. Its kubeconfig is a file of its own: ~/.kube/config is not touched.
#
# Two things some machines need are applied only where they are detected, so the same script runs unchanged on
# a laptop with a normal kernel:
#   - root's capability bounding set lacks CAP_SYS_RESOURCE: docker.sh's runtime drops it from privileged
#     containers, and the node's containerd clamps pods' oom_score_adj (restrict_oom_score_adj), which runc
#     cannot lower without it;
#   - cgroup v1: kubelet >= 1.35 refuses it unless failCgroupV1 is false.
#
#   scripts/kind.sh start|stop|status|env|build|load IMAGE...|export-logs DIR
#     start        build (or find) the node image, create the cluster if it is not there, wait for the node,
#                  CoreDNS and the storage provisioner; prints KUBECONFIG=/abs/path
#     stop         delete the cluster (the node image and every build stay cached)
#     status       whether the cluster answers
#     env          when it answers: KUBECONFIG=..., DOCKER_HOST=... (the daemon holding its images) and PATH=...
#                  with kubectl, helm and kind of these builds first; `export $(scripts/kind.sh env)` uses them
#     build        only build (or find) the node image; prints NODE_IMAGE=...
#     load         kind load docker-image IMAGE... (images of the project's daemon) into the node
#     export-logs  kind export logs DIR: the node's journal, containerd, kubelet and every container's logs
# Environment: CONVEYOR_CACHE (default ~/.cache/conveyor), CONVEYOR_KIND_CLUSTER (default conveyor), and those
# of scripts/kind-node.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
KUBE_VERSION="${CONVEYOR_KUBE_VERSION:-v1.36.3}"
CLUSTER="${CONVEYOR_KIND_CLUSTER:-conveyor}"
DIR="$CACHE/kind"
KUBECONFIG_FILE="$DIR/$CLUSTER.kubeconfig"
KIND=""

say() { echo "kind.sh: $*" >&2; }
die() { say "$*"; exit 1; }

docker_env() {
  local found
  found=$(bash "$HERE/docker.sh" start | sed -n 's/^DOCKER_HOST=//p')
  [ -n "$found" ] || die "the project's docker daemon did not start (scripts/docker.sh start)"
  export DOCKER_HOST="$found" DOCKER_BUILDKIT=0
  kind_bin
}

kind_bin() {
  KIND=$(bash "$HERE/kind-node.sh" kind | sed -n 's/^KIND=//p')
  [ -x "$KIND" ] || die "scripts/kind-node.sh kind gave no kind binary"
}

node_image() {
  local found
  found=$(bash "$HERE/kind-node.sh" image | sed -n 's/^NODE_IMAGE=//p')
  [ -n "$found" ] || die "scripts/kind-node.sh image gave no node image"
  echo "$found"
}

cgroup_v1() {
  [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]
}

lacks_sys_resource() {  # CAP_SYS_RESOURCE is capability 24
  local bnd
  bnd=$((16#$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)))
  [ $(((bnd >> 24) & 1)) = 0 ]
}

# --- the cluster ----------------------------------------------------------------------------------------

cluster_config() {  # cluster_config NODE_IMAGE
  cat <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # The node image's CNI config is the pod network (no kindnetd image without a registry).
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
  apiServerAddress: 127.0.0.1
nodes:
- role: control-plane
  image: $1
EOF
  if lacks_sys_resource; then
    cat <<'EOF'
containerdConfigPatches:
- |-
  # Root lacks CAP_SYS_RESOURCE: runc cannot lower a pod's oom_score_adj, so containerd clamps it.
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
EOF
  fi
  if cgroup_v1; then
    cat <<'EOF'
kubeadmConfigPatches:
- |
  # cgroup v1 here: kubelet >= 1.35 refuses it unless told otherwise.
  kind: KubeletConfiguration
  failCgroupV1: false
EOF
  fi
}

kubectl_bin() {
  echo "$CACHE/kube/bin-$KUBE_VERSION/kubectl"
}

exists() {
  [ -x "$KIND" ] && "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"
}

answers() {
  [ -f "$KUBECONFIG_FILE" ] && [ -x "$(kubectl_bin)" ] &&
    "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_FILE" --request-timeout 5s get --raw /readyz >/dev/null 2>&1
}

# kubectl, helm (scripts/helm.sh) and kind in one directory, for PATH.
tools() {
  local helm
  helm=$(bash "$HERE/helm.sh" path | sed -n 's/^HELM=//p')
  [ -x "$helm" ] || die "scripts/helm.sh gave no helm"
  mkdir -p "$DIR/tools"
  ln -sf "$(kubectl_bin)" "$DIR/tools/kubectl"
  ln -sf "$helm" "$DIR/tools/helm"
  ln -sf "$KIND" "$DIR/tools/kind"
}

start() {
  docker_env
  mkdir -p "$DIR"
  exec 9>"$DIR/.$CLUSTER.lock"
  flock 9
  local t0=$SECONDS node kc
  node=$(node_image)
  kc=$(kubectl_bin)
  [ -x "$kc" ] || bash "$HERE/kube.sh" build

  if exists && ! answers; then
    say "cluster $CLUSTER exists but does not answer: making it again"
    "$KIND" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >&2
  fi
  if ! exists; then
    cluster_config "$node" >"$DIR/$CLUSTER.yaml"
    # Its own kubeconfig file: kind would otherwise write into ~/.kube/config.
    "$KIND" create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --config "$DIR/$CLUSTER.yaml" \
      --wait 180s >&2
  else
    "$KIND" export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1
  fi
  "$kc" --kubeconfig "$KUBECONFIG_FILE" wait --for=condition=Ready node --all --timeout 180s >/dev/null
  # In-cluster DNS before anything else starts: a pod that resolves nothing fails in confusing ways.
  "$kc" --kubeconfig "$KUBECONFIG_FILE" -n kube-system rollout status deployment/coredns --timeout 180s >/dev/null
  "$kc" --kubeconfig "$KUBECONFIG_FILE" -n local-path-storage rollout status deployment/local-path-provisioner \
    --timeout 180s >/dev/null
  say "cluster $CLUSTER up in $((SECONDS - t0))s (node image $node; kubectl: $kc)"
  echo "KUBECONFIG=$KUBECONFIG_FILE"
}

stop() {
  docker_env
  if exists; then
    "$KIND" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >&2
  fi
  rm -f "$KUBECONFIG_FILE"
  echo "cluster $CLUSTER deleted"
}

load() {
  [ $# -gt 0 ] || die "usage: $0 load IMAGE..."
  docker_env
  exists || die "no cluster $CLUSTER: scripts/kind.sh start first"
  "$KIND" load docker-image --name "$CLUSTER" "$@" >&2
}

export_logs() {
  [ $# -eq 1 ] || die "usage: $0 export-logs DIR"
  docker_env
  exists || die "no cluster $CLUSTER"
  "$KIND" export logs --name "$CLUSTER" "$1" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then echo "cluster $CLUSTER running: KUBECONFIG=$KUBECONFIG_FILE"; else echo "cluster $CLUSTER not running"; exit 1; fi ;;
  env)
    answers || { echo "cluster $CLUSTER not running: scripts/kind.sh start" >&2; exit 1; }
    kind_bin
    tools
    echo "KUBECONFIG=$KUBECONFIG_FILE"
    bash "$HERE/docker.sh" env
    echo "PATH=$DIR/tools:$PATH" ;;
  build) docker_env && echo "NODE_IMAGE=$(node_image)" ;;
  load) shift && load "$@" ;;
  export-logs) shift && export_logs "$@" ;;
  *) echo "usage: $0 start|stop|status|env|build|load IMAGE...|export-logs DIR" >&2; exit 2 ;;
esac
