#!/usr/bin/env python3
"""confluent-kafka (librdkafka 2.16): an idempotent producer with acks=all sends 100,000 records
to a topic with 3 partitions and replication factor 3; a consumer that assigns the partitions
itself (no consumer group: Tern has none yet) reads from the beginning and must get every record,
in order per partition, none twice. Each value carries its sequence number."""

import os
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import interop_common as common
from interop_common import check, log

RECORDS = int(os.environ.get("TERN_INTEROP_RECORDS", "100000"))
PARTITIONS = 3


def value_of(sequence):
    return b"seq-%08d-" % sequence + b"x" * 40


def sequence_of(value):
    check(value.startswith(b"seq-") and len(value) == 53, f"unexpected value {value[:60]!r}")
    return int(value[4:12])


def produce(topic):
    producer = Producer({
        "bootstrap.servers": common.BOOTSTRAP,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 300000,
    })
    delivered = [0] * PARTITIONS
    failures = []

    def on_delivery(error, message):
        if error is not None:
            failures.append(f"{message.partition()}: {error}")
        else:
            delivered[message.partition()] += 1

    started = time.monotonic()
    for sequence in range(RECORDS):
        while True:
            try:
                # The partition is chosen here so each partition's expected order is known.
                producer.produce(topic, value=value_of(sequence), key=b"%d" % sequence,
                                 partition=sequence % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)  # the local queue is full: let deliveries drain it
        producer.poll(0)
    remaining = producer.flush(600)
    log(f"produced {RECORDS} records in {time.monotonic() - started:.1f} s, delivered per partition {delivered}")
    check(remaining == 0, f"{remaining} records still undelivered after flush")
    check(not failures, f"{len(failures)} deliveries failed, first: {failures[:5]}")
    check(sum(delivered) == RECORDS, f"{sum(delivered)} delivery reports of success for {RECORDS} records")


def consume(topic):
    consumer = Consumer({
        "bootstrap.servers": common.BOOTSTRAP,
        # librdkafka wants a group.id for any consumer; no group API is used: assign() and no commits.
        "group.id": "tern-interop-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    received = [[] for _ in range(PARTITIONS)]
    at_end = set()
    # Every record was acknowledged with acks=all, so it lies below the high watermark: reading
    # each partition to its end (EOF at the high watermark) reads everything there is.
    deadline = time.monotonic() + 600
    while len(at_end) < PARTITIONS:
        check(time.monotonic() < deadline, f"partitions {sorted(set(range(PARTITIONS)) - at_end)} never reached "
                                           f"their end; read {[len(r) for r in received]}")
        for message in consumer.consume(num_messages=10000, timeout=1.0):
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    continue
                raise common.InteropFailure(f"consumer error: {message.error()}")
            received[message.partition()].append(sequence_of(message.value()))
            at_end.discard(message.partition())
    consumer.close()
    return received


def main():
    topic = common.unique_topic("confluent-idempotent")
    common.create_topic(topic, PARTITIONS, 3)
    produce(topic)
    received = consume(topic)
    log(f"consumed per partition {[len(r) for r in received]}")
    for partition in range(PARTITIONS):
        expected = list(range(partition, RECORDS, PARTITIONS))
        got = received[partition]
        if got != expected:
            duplicates = len(got) - len(set(got))
            missing = sorted(set(expected) - set(got))
            first_difference = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            raise common.InteropFailure(
                f"partition {partition}: read {len(got)} records, expected {len(expected)}; "
                f"{duplicates} duplicates, {len(missing)} missing (first {missing[:5]}), "
                f"first difference at index {first_difference}: got {got[first_difference:first_difference + 3]}, "
                f"expected {expected[first_difference:first_difference + 3]}")
    log(f"all {RECORDS} records read back complete, in order per partition, none twice")


if __name__ == "__main__":
    common.run_test(main)
