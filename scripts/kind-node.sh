#!/usr/bin/env bash
# kind's node image, built without any container registry: every artefact of it from package registries alone.
#   kind              sigs.k8s.io/kind, from its Go module
#   kubelet, kubeadm, kubectl, kube-{apiserver,controller-manager,scheduler,proxy}, etcd
#                     static builds of k8s.io/kubernetes and go.etcd.io/etcd (scripts/kube.sh build), etcd at the
#                     version kubeadm deploys
#   CoreDNS           github.com/coredns/coredns at the version kubeadm deploys
#   pause             build/pause/linux/pause.c of the k8s.io/kubernetes module, gcc -static
#   crictl            sigs.k8s.io/cri-tools (kind load's presence check, kind export logs)
#   storage           github.com/rancher/local-path-provisioner: the default StorageClass `standard`
#                     (kind/default-storage.yaml), its helper pods on the node's base image
#   node OS           Debian bookworm by debootstrap with kind's package list; containerd, runc and the CNI
#                     plugins from Debian; kind's own files (systemd units, entrypoint) from the kind module
#   pod network       one node: a ptp + host-local CNI config for the node's pod CIDR (kind/cni.conflist)
# Each part is cached under ${CONVEYOR_CACHE:-~/.cache/conveyor}/kind; the image's tag names its inputs (the
# versions, this script and kind/), so an unchanged one is found in the daemon and reused.
#   scripts/kind-node.sh image|kind
#     image   build (or find) the node image; prints NODE_IMAGE=...
#     kind    build (or find) the kind binary; prints KIND=...
# The images live in DOCKER_HOST's daemon, or the project's own (scripts/docker.sh).
# Environment: CONVEYOR_KUBE_VERSION, CONVEYOR_KIND_VERSION, CONVEYOR_DEBIAN_MIRROR.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HERE="$(cd "$(dirname "$0")" && pwd)"
KIND_VERSION="${CONVEYOR_KIND_VERSION:-v0.33.0}"
KUBE_VERSION="${CONVEYOR_KUBE_VERSION:-v1.36.3}"
CRICTL_VERSION="${CONVEYOR_CRICTL_VERSION:-v1.37.0}"
LOCAL_PATH_VERSION="${CONVEYOR_LOCAL_PATH_VERSION:-v0.0.30}"
DIR="$CACHE/kind"
KIND="$DIR/bin/kind-$KIND_VERSION"
BASE_IMAGE="conveyor-kind/base:bookworm-$KIND_VERSION"
# The images of the node are named as kubeadm and kind's manifests ask for them, so nothing is ever pulled.
HELPER_IMAGE="conveyor-kind/local-path-helper:bookworm"
PROVISIONER_IMAGE="conveyor-kind/local-path-provisioner:$LOCAL_PATH_VERSION"

say() { echo "kind-node.sh: $*" >&2; }
die() { say "$*"; exit 1; }

docker_env() {
  [ -n "${DOCKER_HOST:-}" ] || export "$(bash "$HERE/docker.sh" start | grep '^DOCKER_HOST=')"
  export DOCKER_BUILDKIT=0
}

go_env() {
  command -v go >/dev/null || apt_install golang-go
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
  # The module cache is scripts/kube.sh's: the k8s.io/kubernetes module (pause.c, kubeadm's versions) is there.
  export GOMODCACHE="$CACHE/kube/go/mod" GOCACHE="$DIR/go-build" GOFLAGS="-mod=mod -buildvcs=false"
  export GOTELEMETRY=off CGO_ENABLED=0
}

module_dir() {  # module_dir MODULE@VERSION: download it (cached), print where its files are
  local d
  d=$(mktemp -d)
  (cd "$d" && go mod download -json "$1") | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
  rm -rf "$d"
}

# go_build MODULE VERSION PACKAGE OUT: build PACKAGE of MODULE@VERSION with the module's own requirements (its
# go.mod copied into a build module of ours, replaces and all), statically.
go_build() {
  local module=$1 version=$2 package=$3 out=$4 b src
  b="$DIR/build/$(basename "$module")-$version"
  rm -rf "$b"
  mkdir -p "$b" "$(dirname "$out")"
  src=$(module_dir "$module@$version")
  printf 'module conveyor.local/build\n\n%s\n\nrequire %s %s\n' "$(grep -E '^(go|godebug) ' "$src/go.mod")" \
    "$module" "$version" >"$b/go.mod"
  if grep -qE '^replace' "$src/go.mod"; then
    # A replace of a module by a path inside it cannot be followed from outside: none of ours has one.
    sed -n '/^replace/,/^)/p' "$src/go.mod" | grep -v '=> \.' >>"$b/go.mod" || true
  fi
  (cd "$b" && go build -trimpath -ldflags "-s -w" -o "$out" "$package") >&2
  rm -rf "$b"
}

# --- the parts of the node image ------------------------------------------------------------------------

KMOD=""
ETCD_TAG="" COREDNS_TAG="" PAUSE_TAG=""

# What kubeadm $KUBE_VERSION deploys, read from its own constants: the node image carries exactly those tags.
kubeadm_versions() {
  KMOD=$(module_dir "k8s.io/kubernetes@$KUBE_VERSION")
  local constants="$KMOD/cmd/kubeadm/app/constants/constants.go"
  ETCD_TAG=$(sed -nE 's/^[[:space:]]*DefaultEtcdVersion = "([^"]+)"/\1/p' "$constants")
  COREDNS_TAG=$(sed -nE 's/^[[:space:]]*CoreDNSVersion = "([^"]+)"/\1/p' "$constants")
  PAUSE_TAG=$(sed -nE 's/^[[:space:]]*PauseVersion = "([^"]+)"/\1/p' "$constants")
  [ -n "$ETCD_TAG" ] && [ -n "$COREDNS_TAG" ] && [ -n "$PAUSE_TAG" ] ||
    die "could not read etcd/CoreDNS/pause versions from $constants"
}

build_kind() {
  [ -x "$KIND" ] && return 0
  go_env
  say "building kind $KIND_VERSION (sigs.k8s.io/kind)"
  local gobin
  gobin=$(mktemp -d)
  GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION" >&2
  mkdir -p "$(dirname "$KIND")"
  mv "$gobin/kind" "$KIND"
  rm -rf "$gobin"
}

KUBE_BIN="" ETCD_BIN=""
build_kube() {
  local found
  # etcd at kubeadm's version: "3.6.8-0" is etcd v3.6.8, image revision 0.
  found=$(CONVEYOR_KUBE_VERSION="$KUBE_VERSION" CONVEYOR_ETCD_VERSION="v${ETCD_TAG%-*}" bash "$HERE/kube.sh" bin |
    tail -n1)
  KUBE_BIN=$(sed -nE 's/.*KUBE_BIN=([^ ]+).*/\1/p' <<<"$found")
  ETCD_BIN=$(sed -nE 's/.*ETCD=([^ ]+).*/\1/p' <<<"$found")
  [ -x "$KUBE_BIN/kubelet" ] && [ -x "$ETCD_BIN" ] || die "scripts/kube.sh bin gave no kubelet/etcd: $found"
}

# build_tool NAME MODULE VERSION PACKAGE: a static binary at $DIR/NAME-VERSION/NAME, built once.
build_tool() {
  local name=$1 module=$2 version=$3 package=$4 out="$DIR/$1-$3/$1"
  if [ ! -f "$DIR/$name-$version/.complete" ]; then
    go_env
    say "building $name $version ($module)"
    go_build "$module" "$version" "$package" "$out"
    touch "$DIR/$name-$version/.complete"
  fi
  echo "$out"
}

build_pause() {
  local out="$DIR/pause-$PAUSE_TAG/pause"
  if [ ! -x "$out" ]; then
    command -v gcc >/dev/null || apt_install gcc libc6-dev
    mkdir -p "$(dirname "$out")"
    gcc -Os -static -DVERSION="$PAUSE_TAG" -o "$out" "$KMOD/build/pause/linux/pause.c"
    strip "$out"
  fi
  echo "$out"
}

# kind's base image (images/base of the kind module): Debian with systemd, containerd, runc, the CNI plugins and
# the tools kubeadm and kubelet call, plus kind's own files, with systemd cleaned up the way kind's Dockerfile does.
build_base() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null || apt_install debootstrap
  local rootfs="$DIR/rootfs" kmod files mirror t0=$SECONDS
  local pkgs=systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod
  pkgs+=,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,containerd,runc,socat,ebtables
  pkgs+=,containernetworking-plugins
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  mirror=$(debian_mirror)
  say "debootstrap bookworm for the node (kind's packages) from $mirror"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$rootfs" "$mirror" >&2
  go_env
  kmod=$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")
  files="$kmod/images/base/files"
  mkdir -p "$rootfs/kind" "$rootfs/etc/systemd/system/kubelet.service.d" "$rootfs/opt/cni/bin"
  cp -r "$files/usr/local/bin/." "$rootfs/usr/local/bin/"
  cp -r "$files/kind/." "$rootfs/kind/"
  cp -r "$files/etc/." "$rootfs/etc/"
  chmod -R u+w "$rootfs/kind" "$rootfs/etc" "$rootfs/usr/local/bin"  # the module cache is read-only
  chmod 0755 "$rootfs"/usr/local/bin/* "$rootfs"/kind/bin/*
  # kind's units call its own builds under /usr/local/bin; the node runs Debian's.
  local b
  for b in containerd containerd-shim-runc-v2 ctr; do ln -sf "/usr/bin/$b" "$rootfs/usr/local/bin/$b"; done
  for b in host-local loopback ptp portmap bridge; do ln -sf "/usr/lib/cni/$b" "$rootfs/opt/cni/bin/$b"; done
  chroot "$rootfs" bash -euc '
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf
    ln -sf /usr/lib/systemd/systemd /sbin/init
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
    systemctl mask systemd-binfmt.service >/dev/null 2>&1
    mkdir -p /etc/kubernetes/manifests
    ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
      | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json
    apt-get clean
    rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/log/*.log /tmp/*'
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV container=docker' --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    - "$BASE_IMAGE-imported" >/dev/null
  # docker 20.10's import takes no STOPSIGNAL; systemd stops on SIGRTMIN+3.
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$BASE_IMAGE-imported" | docker build -q -t "$BASE_IMAGE" - >/dev/null
  docker rmi "$BASE_IMAGE-imported" >/dev/null
  rm -rf "$rootfs"
  say "base image $BASE_IMAGE made in $((SECONDS - t0))s"
}

# scratch_image IMAGE FILE [ENTRYPOINT]: FILE (static) as /usr/local/bin/NAME of an image with nothing else.
scratch_image() {
  local image=$1 file=$2 entry=${3:-} d args
  d=$(mktemp -d)
  mkdir -p "$d/usr/local/bin" "$d/tmp" "$d/etc"
  chmod 1777 "$d/tmp"
  echo 'nobody:x:65534:65534:nobody:/:/sbin/nologin' >"$d/etc/passwd"
  cp "$file" "$d/usr/local/bin/"
  args=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin')
  [ -n "$entry" ] && args+=(--change "ENTRYPOINT [\"$entry\"]")
  tar -C "$d" --numeric-owner --owner=0 --group=0 -c . | docker import "${args[@]}" - "$image" >/dev/null
  rm -rf "$d"
}

# base_image IMAGE FILE...: the node's base (glibc, iptables, a shell) with FILEs in /usr/local/bin.
base_image() {
  local image=$1 d f
  shift
  d=$(mktemp -d)
  { echo "FROM $BASE_IMAGE"
    for f in "$@"; do cp "$f" "$d/"; echo "COPY $(basename "$f") /usr/local/bin/"; done
    echo 'ENTRYPOINT []'
    echo 'CMD []'; } >"$d/Dockerfile"
  docker build -q -t "$image" "$d" >/dev/null
  rm -rf "$d"
}

# Every image the node preloads, tagged as kubeadm, kind and the storage manifest name them.
build_images() {
  local pause coredns crictl provisioner c
  pause=$(build_pause)
  coredns=$(build_tool coredns github.com/coredns/coredns "$COREDNS_TAG" github.com/coredns/coredns)
  provisioner=$(build_tool local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION" \
    github.com/rancher/local-path-provisioner)
  scratch_image "registry.k8s.io/pause:$PAUSE_TAG" "$pause" /usr/local/bin/pause
  # kind's containerd config names pause:3.10 as the sandbox image.
  docker tag "registry.k8s.io/pause:$PAUSE_TAG" registry.k8s.io/pause:3.10
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "registry.k8s.io/$c:$KUBE_VERSION" "$KUBE_BIN/$c"
  done
  base_image "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$KUBE_BIN/kube-proxy"  # it runs iptables
  scratch_image "registry.k8s.io/etcd:$ETCD_TAG" "$ETCD_BIN"
  scratch_image "registry.k8s.io/coredns/coredns:$COREDNS_TAG" "$coredns" /usr/local/bin/coredns
  scratch_image "$PROVISIONER_IMAGE" "$provisioner"
  # The helper pods of the provisioner run its setup and teardown scripts: they need a shell and coreutils.
  docker tag "$BASE_IMAGE" "$HELPER_IMAGE"
}

NODE_IMAGES=()
node_images() {
  NODE_IMAGES=(registry.k8s.io/pause:3.10 "registry.k8s.io/pause:$PAUSE_TAG" "registry.k8s.io/etcd:$ETCD_TAG"
    "registry.k8s.io/coredns/coredns:$COREDNS_TAG" "$PROVISIONER_IMAGE" "$HELPER_IMAGE")
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    NODE_IMAGES+=("registry.k8s.io/$c:$KUBE_VERSION")
  done
}

# The node image's tag names everything it is made of: a change of a version or of this script's files is a new
# image, and an unchanged one is found in the daemon and reused.
node_image_name() {
  local key
  key=$(cat "$HERE/kind-node.sh" "$HERE/kind/"* | sha256sum | cut -c1-12)
  echo "conveyor-kind/node:$KUBE_VERSION-$key"
}

# What `kind build node-image` does (kind's pkg/build/nodeimage), by hand: that command needs containerd 2.x's
# ctr in the base and pulls what it lacks, and Debian's containerd is 1.6.
build_node() {
  local node=$1 c="conveyor-kind-nodebuild" t0=$SECONDS b
  go_env
  kubeadm_versions
  build_base  # mostly downloads: first, while nothing else is compiling
  build_kind
  build_kube
  build_images
  node_images
  local crictl
  crictl=$(build_tool crictl sigs.k8s.io/cri-tools "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl)
  say "making the node image $node"
  docker rm -f "$c" >/dev/null 2>&1 || true
  docker run -d --name "$c" --privileged --entrypoint=sleep "$BASE_IMAGE" infinity >/dev/null
  # shellcheck disable=SC2064  # the container's name is fixed now
  trap "docker rm -f -v $c >/dev/null 2>&1 || true" EXIT
  for b in kubelet kubeadm kubectl; do docker cp "$KUBE_BIN/$b" "$c:/usr/bin/$b" >&2; done
  docker cp "$crictl" "$c:/usr/local/bin/crictl" >&2
  docker exec "$c" bash -euc "chown root:root /usr/bin/kube* /usr/local/bin/crictl; echo -n $KUBE_VERSION >/kind/version;
    mkdir -p /etc/cni/net.d /kind/manifests"
  docker cp "$HERE/kind/cni.conflist" "$c:/etc/cni/net.d/10-conveyor-ptp.conflist" >&2
  sed -e "s#@PROVISIONER_IMAGE@#$PROVISIONER_IMAGE#g" -e "s#@HELPER_IMAGE@#$HELPER_IMAGE#g" \
    "$HERE/kind/default-storage.yaml" | docker exec -i "$c" bash -c 'cat >/kind/manifests/default-storage.yaml'
  docker exec "$c" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  docker exec "$c" bash -euc 'for i in $(seq 100); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.2; done
    cat /tmp/containerd.log; exit 1'
  docker save "${NODE_IMAGES[@]}" |
    docker exec -i "$c" ctr --namespace=k8s.io images import --all-platforms --no-unpack - >&2
  docker exec "$c" bash -c 'pkill containerd; for i in $(seq 50); do pgrep -x containerd >/dev/null || exit 0; sleep 0.2; done'
  docker exec "$c" bash -c 'rm -rf /tmp/* /var/log/*.log'
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' "$c" "$node" >/dev/null
  docker rm -f -v "$c" >/dev/null
  trap - EXIT
  # What made it is not needed to run it; what is left of the builds' caches goes too.
  docker rmi "${NODE_IMAGES[@]}" >/dev/null 2>&1 || true
  rm -rf "$DIR/go-build"
  say "node image $node made in $((SECONDS - t0))s"
}

node_image() {
  local node
  node=$(node_image_name)
  if ! docker image inspect "$node" >/dev/null 2>&1; then
    # One build at a time (two test sessions may start at once).
    mkdir -p "$DIR"
    exec 6>"$DIR/.build.lock"
    flock 6
    docker image inspect "$node" >/dev/null 2>&1 || build_node "$node"
    exec 6>&-
  fi
  echo "$node"
}

case "${1:-}" in
  image) docker_env && echo "NODE_IMAGE=$(node_image)" ;;
  kind) build_kind && echo "KIND=$KIND" ;;
  *) echo "usage: $0 image|kind" >&2; exit 2 ;;
esac
