#!/bin/bash
# One KRaft broker+controller with its log on the volume at /var/lib/kafka (formatted on first start), advertised
# as $KAFKA_ADVERTISED (default kafka.$POD_NAMESPACE.svc:9092, the Service's name). The settings are those of
# scripts/kafka.sh: one node, so every internal topic has one replica.
set -euo pipefail
dir=/var/lib/kafka
advertised="${KAFKA_ADVERTISED:-kafka.${POD_NAMESPACE:?POD_NAMESPACE or KAFKA_ADVERTISED must be set}.svc:9092}"
mkdir -p "$dir/data" /tmp/kafka
cat >/tmp/kafka/server.properties <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
PROPS
printf '%s\n' 'rootLogger.level=WARN' 'rootLogger.appenderRef.console.ref=console' 'appender.console.type=Console' \
  'appender.console.name=console' 'appender.console.layout.type=PatternLayout' \
  'appender.console.layout.pattern=%d %p %c: %m%n' >/tmp/kafka/log4j2.properties
java=(java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.io.tmpdir=/tmp -Dlog4j2.configurationFile=/tmp/kafka/log4j2.properties
  -cp '/opt/kafka/libs/*')
if [ ! -f "$dir/data/meta.properties" ]; then
  "${java[@]}" kafka.tools.StorageTool format -t "$("${java[@]}" kafka.tools.StorageTool random-uuid | tail -n1)" \
    -c /tmp/kafka/server.properties
fi
echo "conveyor-kafka: advertised as $advertised"
exec "${java[@]}" kafka.Kafka /tmp/kafka/server.properties
