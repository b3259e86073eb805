#!/usr/bin/env bash
# The e2e suite (tests/e2e) against a real cluster made with kind, where the kubelet runs the worker pods from an
# image and the Helm chart runs the operator: the same tests CI runs under e2e/podrunner.py, with no stand-in.
# For users with docker, kind and access to image registries; CI does not run it (no registry there).
#
#   e2e/kind.sh [up|test|down|all]      (default: all = up, then test)
#     up     kind create cluster; build the conveyor image (the repository's Dockerfile) and the example's image
#            on it; kind load both; Postgres and Kafka in the cluster (unless given); conveyor db migrate;
#            helm install charts/conveyor
#     test   run tests/e2e against that cluster (CONVEYOR_E2E_CLUSTER=true: the suite starts no operator and no
#            pod runner); extra arguments go to pytest
#     down   kind delete cluster
#
# Environment:
#   KIND_CLUSTER            cluster name (default conveyor-e2e)
#   CONVEYOR_E2E_NAMESPACE  where the tests run (default conveyor-e2e; the chart gives its workers an account there)
#   CONVEYOR_E2E_PG_DSN     a PostgreSQL DSN the pods can reach; unset: postgres:16 is deployed in the cluster
#   CONVEYOR_E2E_KAFKA      Kafka bootstrap servers the pods can reach; unset: apache/kafka (KRaft) is deployed
#   CONVEYOR_BASE           base image for the Dockerfile (any Debian bookworm image with python3 and
#                           python3-venv); unset: scripts/image.sh makes one with debootstrap
#   DOCKER, KIND, HELM, KUBECTL   the tools (default: from PATH; helm falls back to scripts/helm.sh's build)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER="${KIND_CLUSTER:-conveyor-e2e}"
NAMESPACE="${CONVEYOR_E2E_NAMESPACE:-conveyor-e2e}"
DEPS_NAMESPACE="conveyor-deps"
RELEASE="conveyor"
RELEASE_NAMESPACE="conveyor-system"
DOCKER="${DOCKER:-docker}"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' "$ROOT/pyproject.toml" | head -n1)
IMAGE="conveyor:$VERSION"
# The image the example's manifest names (examples/order_processing/workflow.yaml).
EXAMPLE_IMAGE="orders:0.1.0"
STATE="$ROOT/artifacts/e2e/kind"
KUBECONFIG_FILE="$STATE/kubeconfig"

say() { echo "kind.sh: $*" >&2; }
die() { say "$*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

helm_bin() {
  if [ -n "${HELM:-}" ]; then
    echo "$HELM"
  elif command -v helm >/dev/null 2>&1; then
    command -v helm
  else
    bash "$ROOT/scripts/helm.sh" path | sed -n 's/^HELM=//p'
  fi
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

create_cluster() {
  mkdir -p "$STATE"
  if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "cluster $CLUSTER exists"
  else
    "$KIND" create cluster --name "$CLUSTER" --wait 120s
  fi
  "$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG_FILE"
}

build_images() {
  if [ -n "${CONVEYOR_BASE:-}" ]; then
    "$DOCKER" build --build-arg BASE="$CONVEYOR_BASE" -t "$IMAGE" "$ROOT"
  else
    CONVEYOR_IMAGE="$IMAGE" DOCKER="$DOCKER" bash "$ROOT/scripts/image.sh" build
  fi
  # The example's image, as the Dockerfile's header says a user's image is made: conveyor's, plus the code in /app.
  "$DOCKER" build -t "$EXAMPLE_IMAGE" -f - "$ROOT/examples/order_processing" <<EOF
FROM $IMAGE
COPY --chown=10001:10001 orders/ /app/orders/
EOF
  "$KIND" load docker-image --name "$CLUSTER" "$IMAGE" "$EXAMPLE_IMAGE"
}

deploy_services() {
  kc create namespace "$DEPS_NAMESPACE" --dry-run=client -o yaml | kc apply -f -
  if [ -z "${CONVEYOR_E2E_PG_DSN:-}" ]; then
    say "deploying postgres:16 in $DEPS_NAMESPACE"
    kc -n "$DEPS_NAMESPACE" apply -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres}
spec:
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      containers:
        - name: postgres
          image: postgres:16
          env:
            - {name: POSTGRES_HOST_AUTH_METHOD, value: trust}
            - {name: POSTGRES_DB, value: conveyor}
          ports: [{containerPort: 5432}]
          readinessProbe: {exec: {command: [pg_isready, -U, postgres]}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: postgres}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
EOF
    CONVEYOR_E2E_PG_DSN="postgresql://postgres@postgres.$DEPS_NAMESPACE.svc:5432/conveyor"
  fi
  if [ -z "${CONVEYOR_E2E_KAFKA:-}" ]; then
    say "deploying apache/kafka (one KRaft broker+controller) in $DEPS_NAMESPACE"
    kc -n "$DEPS_NAMESPACE" apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: kafka}
spec:
  selector: {matchLabels: {app: kafka}}
  template:
    metadata: {labels: {app: kafka}}
    spec:
      containers:
        - name: kafka
          image: apache/kafka:4.1.0
          env:
            - {name: KAFKA_NODE_ID, value: "1"}
            - {name: KAFKA_PROCESS_ROLES, value: "broker,controller"}
            - {name: KAFKA_LISTENERS, value: "PLAINTEXT://:9092,CONTROLLER://:9093"}
            - {name: KAFKA_ADVERTISED_LISTENERS, value: "PLAINTEXT://kafka.$DEPS_NAMESPACE.svc:9092"}
            - {name: KAFKA_CONTROLLER_LISTENER_NAMES, value: CONTROLLER}
            - {name: KAFKA_LISTENER_SECURITY_PROTOCOL_MAP, value: "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"}
            - {name: KAFKA_CONTROLLER_QUORUM_VOTERS, value: "1@localhost:9093"}
            - {name: KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, value: "1"}
            - {name: KAFKA_TRANSACTION_STATE_LOG_MIN_ISR, value: "1"}
            - {name: KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS, value: "0"}
          ports: [{containerPort: 9092}]
          readinessProbe: {tcpSocket: {port: 9092}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: kafka}
spec:
  selector: {app: kafka}
  ports: [{port: 9092}]
EOF
    CONVEYOR_E2E_KAFKA="kafka.$DEPS_NAMESPACE.svc:9092"
  fi
  kc -n "$DEPS_NAMESPACE" rollout status deployment --timeout 300s
  # What `test` (maybe a later invocation) passes to the suite.
  printf 'CONVEYOR_E2E_PG_DSN=%s\nCONVEYOR_E2E_KAFKA=%s\n' "$CONVEYOR_E2E_PG_DSN" "$CONVEYOR_E2E_KAFKA" >"$STATE/services.env"
}

migrate() {
  kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
  kc -n "$NAMESPACE" delete pod conveyor-migrate --ignore-not-found
  # The schema is created explicitly, never by a worker (DESIGN §4), with the image the workers run.
  kc -n "$NAMESPACE" run conveyor-migrate --image "$IMAGE" --image-pull-policy IfNotPresent --restart Never \
    --rm -i --quiet --command -- conveyor db migrate --dsn "$CONVEYOR_E2E_PG_DSN"
}

install_chart() {
  local helm
  helm=$(helm_bin)
  [ -n "$helm" ] || die "no helm: install it or let scripts/helm.sh build it"
  "$helm" --kubeconfig "$KUBECONFIG_FILE" upgrade --install "$RELEASE" "$ROOT/charts/conveyor" \
    --namespace "$RELEASE_NAMESPACE" --create-namespace \
    --set image.repository=conveyor --set image.tag="$VERSION" --set image.pullPolicy=IfNotPresent \
    --set "worker.namespaces={$NAMESPACE}" \
    --wait --timeout 5m
}

up() {
  need "$DOCKER" "install docker"
  need "$KIND" "install kind (https://kind.sigs.k8s.io)"
  need "$KUBECTL" "install kubectl"
  create_cluster
  build_images
  deploy_services
  migrate
  install_chart
  say "cluster $CLUSTER is up: KUBECONFIG=$KUBECONFIG_FILE"
}

run_tests() {
  [ -f "$KUBECONFIG_FILE" ] || die "no cluster: run e2e/kind.sh up first"
  if [ -f "$STATE/services.env" ]; then
    # shellcheck disable=SC1091
    . "$STATE/services.env"
  fi
  [ -n "${CONVEYOR_E2E_PG_DSN:-}" ] && [ -n "${CONVEYOR_E2E_KAFKA:-}" ] || die "no services: run e2e/kind.sh up first"
  [ -x "$ROOT/.venv/bin/pytest" ] || make -C "$ROOT" .venv/.installed
  cd "$ROOT"
  KUBECONFIG="$KUBECONFIG_FILE" CONVEYOR_E2E_CLUSTER=true CONVEYOR_E2E_NAMESPACE="$NAMESPACE" \
    CONVEYOR_E2E_PG_DSN="$CONVEYOR_E2E_PG_DSN" CONVEYOR_E2E_KAFKA="$CONVEYOR_E2E_KAFKA" \
    CONVEYOR_E2E_IMAGE="$EXAMPLE_IMAGE" \
    exec "$ROOT/.venv/bin/pytest" tests/e2e "$@"
}

down() {
  "$KIND" delete cluster --name "$CLUSTER"
  rm -f "$KUBECONFIG_FILE" "$STATE/services.env"
}

command="${1:-all}"
[ $# -eq 0 ] || shift
case "$command" in
  up) up ;;
  test) run_tests "$@" ;;
  down) down ;;
  all) up && run_tests "$@" ;;
  *) die "unknown command $command: expected up, test, down or all" ;;
esac
