#!/usr/bin/env python3
"""kafka-python (pure Python, its own protocol code): KafkaProducer sends records to two
partitions and flushes; every send must succeed. KafkaConsumer with group_id=None assigns the
partitions, seeks to the beginning and must read every record, in order per partition, none twice."""

import os
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import interop_common as common
from interop_common import check, log

RECORDS = int(os.environ.get("TERN_INTEROP_KAFKA_PYTHON_RECORDS", "5000"))
PARTITIONS = 2


def main():
    topic = common.unique_topic("kafka-python")
    common.create_topic(topic, PARTITIONS, 3)
    servers = common.bootstrap_addresses()

    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5, retries=10,
                             request_timeout_ms=60000, client_id="tern-interop-kafka-python")
    futures = [producer.send(topic, key=b"%d" % i, value=b"kafka-python-%06d" % i, partition=i % PARTITIONS)
               for i in range(RECORDS)]
    producer.flush(timeout=300)
    failed = [(i, f.exception) for i, f in enumerate(futures) if not f.succeeded()]
    check(not failed, f"{len(failed)} of {RECORDS} sends did not succeed, first: {failed[:3]}")
    offsets = {}
    for i, future in enumerate(futures):
        metadata = future.get(timeout=0)
        offsets.setdefault(metadata.partition, []).append(metadata.offset)
    for partition, partition_offsets in offsets.items():
        check(partition_offsets == sorted(set(partition_offsets)),
              f"partition {partition}: acknowledged offsets are not strictly increasing")
    producer.close(timeout=30)
    log(f"kafka-python produced {RECORDS} records; acknowledged offsets per partition "
        f"{ {p: (o[0], o[-1]) for p, o in sorted(offsets.items())} }")

    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="tern-interop-kafka-python")
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    received = {p: [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 300
    while sum(map(len, received.values())) < RECORDS:
        check(time.monotonic() < deadline, f"read only {[len(r) for r in received.values()]} of {RECORDS} records")
        for partition, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                received[partition.partition].append((record.offset, record.value))
    # A little longer, so that records beyond the expected ones (duplicates) would show up too.
    end = {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    for partition, records in consumer.poll(timeout_ms=2000).items():
        for record in records:
            received[partition.partition].append((record.offset, record.value))
    consumer.close()

    for partition in range(PARTITIONS):
        expected = [b"kafka-python-%06d" % i for i in range(partition, RECORDS, PARTITIONS)]
        values = [value for _, value in received[partition]]
        check(values == expected,
              f"partition {partition}: read {len(values)} records, expected {len(expected)}, "
              f"{len(values) - len(set(values))} duplicates, first values {values[:3]}")
        check(end[partition] == len(expected),
              f"partition {partition}: end offset {end[partition]}, expected {len(expected)}")
        check([offset for offset, _ in received[partition]] == offsets[partition],
              f"partition {partition}: consumed offsets differ from the acknowledged ones")
    log(f"kafka-python consumer read all {RECORDS} records in order at their acknowledged offsets")


if __name__ == "__main__":
    common.run_test(main)
