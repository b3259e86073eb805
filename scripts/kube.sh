#!/usr/bin/env bash
# A throwaway Kubernetes control plane for development and tests, on 127.0.0.1 only: etcd, kube-apiserver
# (RBAC on, client-cert auth) and kube-controller-manager. No nodes, no kubelet: Pods stay Pending (the kind
# cluster of scripts/kind.sh has them).
# Every binary is built with `go build` from its Go module, fetched through the Go module proxy, static
# (CGO_ENABLED=0) so that the same build also goes into kind's node and control-plane images: kubectl,
# kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubeadm, and etcd at the version
# kubeadm deploys. Modules and binaries are cached, so only the first start builds (about ten minutes).
#   scripts/kube.sh start|stop|status|env|restart-apiserver|build|bin
#     build   only build (or find) the binaries; bin prints KUBE_BIN=<dir of the kube binaries> ETCD=<etcd>
# Everything lives under ${CONVEYOR_CACHE:-~/.cache/conveyor}/kube; `start` prints KUBECONFIG=/abs/path.
# etcd's data is new on each start (a clean cluster); the certificates are kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KUBE_VERSION="${CONVEYOR_KUBE_VERSION:-v1.36.3}"
# The etcd that kubeadm $KUBE_VERSION deploys (DefaultEtcdVersion in cmd/kubeadm/app/constants), so kind's
# node image carries the tag kubeadm asks for and this control plane runs the same server.
ETCD_VERSION="${CONVEYOR_ETCD_VERSION:-v3.6.8}"
DIR="$CACHE/kube"
BIN="$DIR/bin-$KUBE_VERSION"
ETCD_DIR="$DIR/etcd-$ETCD_VERSION"
KUBE_CMDS=(kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm)
STATE="$DIR/state"
PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/admin.kubeconfig"
KCM_KUBECONFIG="$STATE/controller-manager.kubeconfig"
PORT_FILE="$STATE/apiserver.port"
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

# --- building -------------------------------------------------------------------------------------------

go_env() {
  command -v go >/dev/null || apt_install golang-go
  # An older Go (Debian's) fetches the toolchain the go.mod files ask for through the module proxy.
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
  export GOMODCACHE="$DIR/go/mod" GOCACHE="$DIR/go/build" GOFLAGS="-mod=mod -buildvcs=false" GOTELEMETRY=off
  # Static: the control-plane images of kind's node are FROM scratch, with no libc to link against.
  export CGO_ENABLED=0
}

upstream_gomod() {  # upstream_gomod DIR MODULE@VERSION: download the module, print the path of its go.mod
  (cd "$1" && go mod download -json "$2") | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])'
}

go_lines() {  # go_lines GOMOD: its go and godebug lines, so the build gets the Go semantics upstream chose
  grep -E '^(go|godebug) ' "$1"
}

build_etcd() {
  local b="$DIR/build/etcd-$ETCD_VERSION" upstream
  mkdir -p "$b"
  echo "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3)" >&2
  rm -f "$b/go.mod" "$b/go.sum"
  upstream=$(upstream_gomod "$b" "go.etcd.io/etcd/server/v3@$ETCD_VERSION")
  printf 'module conveyor.local/etcd-build\n\n%s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$(go_lines "$upstream")" "$ETCD_VERSION" >"$b/go.mod"
  (cd "$b" && go build -trimpath -ldflags "-s -w" -o "$ETCD_DIR/etcd" go.etcd.io/etcd/server/v3) >&2
}

# k8s.io/kubernetes points its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 with local replaces
# to ./staging/src; a module depending on it must replace each with its published v0.Y.Z. The list comes from
# k8s.io/kubernetes's own go.mod.
build_kube() {
  local b="$DIR/build/kubernetes-$KUBE_VERSION" staging="v0.${KUBE_VERSION#v1.}" upstream replaces
  mkdir -p "$b"
  echo "building ${KUBE_CMDS[*]} $KUBE_VERSION (k8s.io/kubernetes)" >&2
  rm -f "$b/go.mod" "$b/go.sum"
  upstream=$(upstream_gomod "$b" "k8s.io/kubernetes@$KUBE_VERSION")
  replaces=$(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\t\2 => \2 '"$staging"'#p' "$upstream")
  if [ "$(grep -c '=>' <<<"$replaces")" -lt 10 ]; then
    echo "found no staging replaces in $upstream" >&2
    return 1
  fi
  printf 'module conveyor.local/kube-build\n\n%s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n%s\n)\n' \
    "$(go_lines "$upstream")" "$KUBE_VERSION" "$replaces" >"$b/go.mod"
  # What `kubectl version` shows and clients check; the upstream build stamps the same variables.
  local minor=${KUBE_VERSION#v1.} ldflags="-s -w" pkg
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  local pkgs=() c
  for c in "${KUBE_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # One `go build` for all of them: the packages they share are compiled once.
  (cd "$b" && go build -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}") >&2
}

build() {
  local t0=$SECONDS built=0
  # kind.sh and a test session may both ask for the binaries at once: one builds, the other waits.
  mkdir -p "$DIR"
  exec 8>"$DIR/.build.lock"
  flock 8
  if [ ! -f "$ETCD_DIR/.complete" ]; then
    go_env
    rm -rf "$ETCD_DIR"
    mkdir -p "$ETCD_DIR"
    build_etcd
    touch "$ETCD_DIR/.complete"
    echo "etcd built in $((SECONDS - t0))s" >&2
    built=1
  fi
  if [ ! -f "$BIN/.complete" ]; then
    go_env
    rm -rf "$BIN"
    mkdir -p "$BIN"
    build_kube
    touch "$BIN/.complete"
    built=1
  fi
  if [ "$built" = 1 ]; then
    # The binaries are all that is used from now on: drop the ~3 GB of compiler cache, keep the modules.
    go clean -cache
    echo "built in $((SECONDS - t0))s into $BIN and $ETCD_DIR" >&2
  fi
  exec 8>&-
}

# --- certificates and kubeconfigs -----------------------------------------------------------------------

need_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

cert() {  # cert NAME SUBJECT [SAN]: a key and a certificate signed by the CA
  local name=$1 subject=$2 san=${3:-} ext="$PKI/$1.ext"
  [ -f "$PKI/$name.crt" ] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  if [ -n "$san" ]; then
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" >"$ext"
  else
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 3650 -sha256 \
    -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    rm -f "$PKI"/*.crt "$PKI"/*.key  # a new CA invalidates every certificate it signed
    openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=conveyor-kube-ca" -days 3650 -sha256 -out "$PKI/ca.crt" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=conveyor-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  if [ ! -f "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

kubeconfig() {  # kubeconfig FILE USER PORT: certificates embedded, so the file stands alone
  local file=$1 user=$2 port=$3
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: conveyor
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$user.crt")
    client-key-data: $(base64 -w0 "$PKI/$user.key")
contexts:
- name: conveyor
  context:
    cluster: conveyor
    user: $user
    namespace: default
current-context: conveyor
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

# --- processes ------------------------------------------------------------------------------------------

pid_alive() {  # pid_alive COMPONENT
  [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null
}

running() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  [ -f "$PORT_FILE" ] && [ -f "$KUBECONFIG_FILE" ] && port_open "$(cat "$PORT_FILE")"
}

launch() {  # launch COMPONENT ARGS...: in the background, detached, logging to $STATE/COMPONENT.log
  local name=$1
  shift
  local exe="$BIN/$name"
  [ "$name" = etcd ] && exe="$ETCD_DIR/etcd"
  nohup setsid "$exe" "$@" </dev/null >"$STATE/$name.log" 2>&1 9>&- &
  echo $! >"$STATE/$name.pid"
}

fail() {  # fail MESSAGE COMPONENT...: say what went wrong, show the logs, stop everything
  local msg=$1 c
  shift
  echo "$msg" >&2
  for c in "$@"; do
    echo "--- last lines of $STATE/$c.log" >&2
    tail -n 30 "$STATE/$c.log" >&2 || true
  done
  stop >&2
  exit 1
}

api() {  # api PATH: GET from the apiserver as the admin, body on stdout
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$(cat "$PORT_FILE")$1"
}

wait_for() {  # wait_for SECONDS WHAT COMPONENT COMMAND...: until COMMAND succeeds, while COMPONENT lives
  local limit=$1 what=$2 component=$3 t0=$SECONDS
  shift 3
  until "$@" >/dev/null 2>&1; do
    pid_alive "$component" || fail "$component exited before $what" "$component"
    [ $((SECONDS - t0)) -lt "$limit" ] || fail "no $what within ${limit}s" "${COMPONENTS[@]}"
    sleep 0.5
  done
}

launch_apiserver() {  # on the port of $PORT_FILE, with etcd on the port of $STATE/etcd.port
  launch kube-apiserver --bind-address=127.0.0.1 --secure-port="$(cat "$PORT_FILE")" --advertise-address=127.0.0.1 \
    --etcd-servers="http://127.0.0.1:$(cat "$STATE/etcd.port")" \
    --authorization-mode=Node,RBAC --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
    --cert-dir="$STATE/apiserver-certs" --profiling=false
  wait_for 120 "apiserver /readyz ok" kube-apiserver api /readyz
}

# Stop the API server and start it again on the same port, as an upgrade or a crash would: every client's
# connections and watches break. For tests of what survives that.
restart_apiserver() {
  running || { echo "kube is not running" >&2; exit 1; }
  local pid i
  pid=$(cat "$STATE/kube-apiserver.pid")
  kill "$pid"
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  launch_apiserver
  echo "kube-apiserver restarted on https://127.0.0.1:$(cat "$PORT_FILE")" >&2
}

start() {
  mkdir -p "$STATE"
  # One start at a time: parallel test sessions share the cluster.
  exec 9>"$DIR/.lock"
  flock 9
  if running; then
    echo "KUBECONFIG=$KUBECONFIG_FILE"
    return 0
  fi
  stop >/dev/null  # leftovers of a half-dead cluster
  need_tools
  build
  pki
  local etcd_port etcd_peer port kcm_port
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  port=$(free_port)
  kcm_port=$(free_port)
  echo "$port" >"$PORT_FILE"
  kubeconfig "$KUBECONFIG_FILE" admin "$port"
  kubeconfig "$KCM_KUBECONFIG" controller-manager "$port"

  rm -rf "$STATE/etcd-data"
  launch etcd --name conveyor --data-dir "$STATE/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "conveyor=http://127.0.0.1:$etcd_peer" --initial-cluster-state new \
    --unsafe-no-fsync --log-level warn
  wait_for 60 "etcd health" etcd curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health"

  echo "$etcd_port" >"$STATE/etcd.port"
  launch_apiserver
  wait_for 30 "default namespace" kube-apiserver api /api/v1/namespaces/default

  launch kube-controller-manager --kubeconfig="$KCM_KUBECONFIG" \
    --authentication-kubeconfig="$KCM_KUBECONFIG" --authorization-kubeconfig="$KCM_KUBECONFIG" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$STATE/controller-manager-certs" \
    --leader-elect=false --use-service-account-credentials \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --controllers='*,-cloud-node-lifecycle-controller,-node-ipam-controller,-node-route-controller,-service-lb-controller' \
    --profiling=false
  # The default ServiceAccount is made by the controller-manager; Pods cannot be created without it.
  wait_for 60 "controller-manager healthz" kube-controller-manager \
    curl -fsSk --max-time 2 "https://127.0.0.1:$kcm_port/healthz"
  wait_for 60 "default ServiceAccount" kube-controller-manager api /api/v1/namespaces/default/serviceaccounts/default
  echo "kube control plane $KUBE_VERSION up on https://127.0.0.1:$port (kubectl: $BIN/kubectl)" >&2
  echo "KUBECONFIG=$KUBECONFIG_FILE"
}

stop() {
  local c pid i
  for c in kube-controller-manager kube-apiserver etcd; do
    if pid_alive "$c"; then
      pid=$(cat "$STATE/$c.pid")
      kill "$pid"
      for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$c.pid"
  done
  echo "kube stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart-apiserver) restart_apiserver ;;
  build) build ;;
  bin) build && echo "KUBE_BIN=$BIN ETCD=$ETCD_DIR/etcd" ;;
  status) if running; then echo "kube running: https://127.0.0.1:$(cat "$PORT_FILE") KUBECONFIG=$KUBECONFIG_FILE"; else echo "kube not running"; exit 1; fi ;;
  env) running && echo "KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 start|stop|status|env|restart-apiserver|build|bin" >&2; exit 2 ;;
esac
