#!/usr/bin/env python3
"""Automatic topic creation (auto.create.topics.enable, on by default): confluent-kafka's and
kafka-python's producers write to topics nobody created. Each topic must come into being with the
cluster's num.partitions (3) and default.replication.factor (3) — as every broker's metadata
shows it, with three distinct replicas per partition — and every acknowledged record must be
stored, read back with a raw Fetch from the partition's leader. A topic named only by a Metadata
request that does not allow creation (kafka-python's consumer) must not appear."""

import time

from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer

import interop_common as common
from interop_common import check, log
from stored_batches import stored_batches

PARTITIONS = 3
REPLICATION_FACTOR = 3
RECORDS = 30


def check_created(topic, acknowledged):
    found = common.wait_for_topic(common.admin_client(), topic, PARTITIONS)
    for partition in found.partitions.values():
        check(len(set(partition.replicas)) == REPLICATION_FACTOR,
              f"{topic}-{partition.id} replicas {partition.replicas}, expected {REPLICATION_FACTOR} distinct brokers")
    stored = set()
    for partition in range(PARTITIONS):
        for batch in stored_batches(topic, partition):
            stored.update(value for _, _, value in batch.records)
    check(acknowledged <= stored, f"{topic}: acknowledged records missing from the stored batches: {sorted(acknowledged - stored)[:5]}")
    log(f"{topic}: created with {PARTITIONS} partitions of {REPLICATION_FACTOR} replicas, {len(acknowledged)} records stored")


def confluent_producer():
    topic = common.unique_topic("auto-confluent")
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000})
    acknowledged, failures = set(), []

    def delivered(error, message):
        if error is None:
            acknowledged.add(message.value())
        else:
            failures.append(error)

    for index in range(RECORDS):
        producer.produce(topic, value=f"confluent-{index}".encode(), key=str(index).encode(), on_delivery=delivered)
        producer.poll(0)
    check(producer.flush(180) == 0, "records still unacknowledged after 180 s")
    check(not failures and len(acknowledged) == RECORDS, f"{len(acknowledged)} acknowledged, failures {failures}")
    check_created(topic, acknowledged)


def kafka_python_producer():
    topic = common.unique_topic("auto-kafka-python")
    producer = KafkaProducer(bootstrap_servers=common.bootstrap_addresses(), acks="all", request_timeout_ms=60000,
                             max_block_ms=120000)
    futures = [producer.send(topic, value=f"kafka-python-{index}".encode(), key=str(index).encode()) for index in range(RECORDS)]
    producer.flush(timeout=180)
    acknowledged = {f"kafka-python-{index}".encode() for index, future in enumerate(futures) if future.get(timeout=60)}
    producer.close()
    check(len(acknowledged) == RECORDS, f"{len(acknowledged)} of {RECORDS} acknowledged")
    check_created(topic, acknowledged)


def consumer_does_not_create():
    topic = common.unique_topic("auto-not-created")
    consumer = KafkaConsumer(bootstrap_servers=common.bootstrap_addresses(), client_id="tern-interop-auto-create",
                             request_timeout_ms=60000, allow_auto_create_topics=False)
    partitions = consumer.partitions_for_topic(topic)  # kafka-python: an empty set for an unknown topic
    check(not partitions, f"{topic} has partitions {partitions} right after a consumer asked for it")
    consumer.close()
    time.sleep(2)  # a creation would have reached the image by now
    check(topic not in common.admin_client().list_topics(timeout=30).topics, f"{topic} was created by a consumer's Metadata")
    log(f"{topic}: a Metadata request that does not allow creation creates nothing")


def main():
    confluent_producer()
    kafka_python_producer()
    consumer_does_not_create()


if __name__ == "__main__":
    common.run_test(main)
