#!/usr/bin/env bash
# A throwaway Apache Kafka 4 (one KRaft broker+controller) for development and tests, on 127.0.0.1 only.
# The broker's jars come from Maven Central (resolved by Maven, cached); Java 17 runs it.
#   scripts/kafka.sh start|stop|status|env
#   scripts/kafka.sh resume    (start a killed broker again on its data and port: the chaos tests crash one)
#   scripts/kafka.sh jars      (only resolve the jars; prints KAFKA_LIBS=dir, for the in-cluster image of e2e/)
# Everything lives under ${CONVEYOR_CACHE:-~/.cache/conveyor}/kafka, or $CONVEYOR_KAFKA_DIR for a broker of its own
# (the jars are shared); `start` prints CONVEYOR_KAFKA=host:port.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KAFKA_VERSION="${CONVEYOR_KAFKA_VERSION:-4.1.1}"
LOG4J_VERSION=2.24.3
DIR="${CONVEYOR_KAFKA_DIR:-$CACHE/kafka}"
LIBS="$CACHE/kafka/libs-$KAFKA_VERSION"
DATA="$DIR/data"
PID_FILE="$DIR/kafka.pid"
PORT_FILE="$DIR/port"
LOG="$DIR/kafka.log"

need() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
}

jars() {
  [ -f "$LIBS/.complete" ] && return 0
  mkdir -p "$DIR/pom"
  cat >"$DIR/pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.conveyor</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$DIR/pom/pom.xml" -Dmaven.repo.local="$CACHE/m2" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >&2
  touch "$LIBS/.complete"
}

running() {
  [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && [ -f "$PORT_FILE" ] && port_open "$(cat "$PORT_FILE")"
}

start() {
  if running; then
    echo "CONVEYOR_KAFKA=127.0.0.1:$(cat "$PORT_FILE")"
    return 0
  fi
  need
  jars
  mkdir -p "$DIR"
  local port controller
  port=$(free_port)
  controller=$(free_port)
  echo "$port" >"$PORT_FILE"
  # A new cluster each start: stale KRaft metadata from another port would not match.
  rm -rf "$DATA"
  mkdir -p "$DATA"
  cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
PROPS
  cat >"$DIR/log4j2.properties" <<LOG4J
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$LOG
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=%d %p %c: %m%n
LOG4J
  local cluster_id
  cluster_id=$(java "${JAVA_OPTS[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1
  launch "$port"
}

launch() {
  nohup java "${JAVA_OPTS[@]}" kafka.Kafka "$DIR/server.properties" >"$DIR/stdout.log" 2>&1 &
  echo $! >"$PID_FILE"
  if ! wait_port "$1" 120 "Kafka"; then
    tail -n 30 "$DIR/stdout.log" "$LOG" >&2 || true
    exit 1
  fi
  echo "CONVEYOR_KAFKA=127.0.0.1:$1"
}

resume() {
  if running; then
    echo "CONVEYOR_KAFKA=127.0.0.1:$(cat "$PORT_FILE")"
    return 0
  fi
  if [ ! -f "$DIR/server.properties" ] || [ ! -f "$PORT_FILE" ]; then
    echo "no broker to resume under $DIR: use start" >&2
    exit 1
  fi
  need
  jars
  launch "$(cat "$PORT_FILE")"
}

stop() {
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  echo "kafka stopped"
}

JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC "-Dlog4j2.configurationFile=$DIR/log4j2.properties" -cp "$LIBS/*")
case "${1:-}" in
  start) start ;;
  resume) resume ;;
  stop) stop ;;
  jars) need && jars && echo "KAFKA_LIBS=$LIBS" ;;
  status) if running; then echo "kafka running: 127.0.0.1:$(cat "$PORT_FILE")"; else echo "kafka not running"; exit 1; fi ;;
  env) running && echo "CONVEYOR_KAFKA=127.0.0.1:$(cat "$PORT_FILE")" ;;
  *) echo "usage: $0 start|stop|status|env|resume|jars" >&2; exit 2 ;;
esac
