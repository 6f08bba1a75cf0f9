#!/usr/bin/env python3
"""kill -9 of a partition leader while confluent-kafka's idempotent acks=all producer writes to it.

A one-partition topic with replication factor 3 (min.insync.replicas 2). The producer sends
numbered values continuously and records every value whose delivery report says success. After
some acknowledgements the test finds the partition's leader in metadata and kills that node's
process with SIGKILL, keeps producing for a few more seconds, and flushes. Then a fresh consumer
reads the partition from the beginning: every acknowledged value must be there, no value twice,
values in the order they were sent (idempotence), and metadata must name a new leader.

Runs last in Interop/run: it leaves the cluster with one node dead (the teardown copes).
"""

import os
import signal
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

import interop_common as common
from interop_common import check, log

ACKS_BEFORE_KILL = 2000
PRODUCE_AFTER_KILL_SECONDS = 5.0


def value_of(sequence):
    return b"failover-%08d" % sequence


def sequence_of(value):
    check(value.startswith(b"failover-") and len(value) == 17, f"unexpected value {value!r}")
    return int(value[9:])


def partition_leader(client, topic):
    metadata = client.list_topics(topic=topic, timeout=10)
    return metadata.topics[topic].partitions[0].leader


def main():
    topic = common.unique_topic("failover")
    common.create_topic(topic, 1, 3)
    pids = common.node_pids()

    acknowledged = []
    failures = []
    fatal_errors = []
    producer = Producer({
        "bootstrap.servers": common.BOOTSTRAP,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 180000,
        # Broker-down errors are expected here; a fatal one (idempotence broken) fails the test.
        "error_cb": lambda error: fatal_errors.append(error) if error.fatal() else None,
    })

    def on_delivery(error, message):
        if error is None:
            acknowledged.append(sequence_of(message.value()))
        else:
            failures.append((sequence_of(message.value()), str(error)))

    def send(sequence):
        while True:
            try:
                producer.produce(topic, value=value_of(sequence), partition=0, on_delivery=on_delivery)
                producer.poll(0)
                return
            except BufferError:
                producer.poll(0.05)

    sequence = 0
    deadline = time.monotonic() + 300
    while len(acknowledged) < ACKS_BEFORE_KILL:
        check(time.monotonic() < deadline, f"only {len(acknowledged)} acknowledgements before the kill")
        send(sequence)
        sequence += 1
        if sequence % 50 == 0:
            producer.poll(0.01)  # keep the rate moderate so the kill lands mid-stream

    leader = partition_leader(producer, topic)
    check(leader in pids, f"leader {leader} is not one of the nodes {sorted(pids)}")
    acknowledged_at_kill = len(acknowledged)
    log(f"{acknowledged_at_kill} acknowledged, {sequence} sent; kill -9 of leader node {leader} (pid {pids[leader]})")
    os.kill(pids[leader], signal.SIGKILL)

    stop = time.monotonic() + PRODUCE_AFTER_KILL_SECONDS
    while time.monotonic() < stop:
        send(sequence)
        sequence += 1
        if sequence % 50 == 0:
            producer.poll(0.01)
    remaining = producer.flush(240)
    log(f"sent {sequence}; acknowledged {len(acknowledged)} ({len(acknowledged) - acknowledged_at_kill} after the kill), "
        f"failed {len(failures)}, undelivered {remaining}")
    check(not common.process_alive(pids[leader]), f"node {leader} (pid {pids[leader]}) is still running after SIGKILL")
    check(not fatal_errors, f"the idempotent producer hit a fatal error: {fatal_errors}")
    check(remaining == 0, f"{remaining} records neither acknowledged nor failed after flush")
    check(len(acknowledged) > acknowledged_at_kill,
          "no record was acknowledged after the leader was killed: the partition did not fail over")
    if failures:
        log(f"{len(failures)} deliveries failed (allowed: not acknowledged), first {failures[:3]}")

    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        new_leader = partition_leader(producer, topic)
        if new_leader >= 0 and new_leader != leader:
            break
        check(time.monotonic() < deadline, f"metadata still names leader {new_leader} (killed: {leader})")
        time.sleep(0.5)
    check(new_leader in pids and common.process_alive(pids[new_leader]), f"new leader {new_leader} is not a live node")
    log(f"new leader: node {new_leader}")

    consumer = Consumer({
        "bootstrap.servers": common.BOOTSTRAP,
        "group.id": "tern-interop-unused",  # librdkafka requires one; no group API is used
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    consumed = []
    deadline = time.monotonic() + 300
    at_end = False
    while not at_end:
        check(time.monotonic() < deadline, f"consumer never reached the end; read {len(consumed)}")
        for message in consumer.consume(num_messages=10000, timeout=1.0):
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end = True
                    continue
                raise common.InteropFailure(f"consumer error: {message.error()}")
            consumed.append(sequence_of(message.value()))
            at_end = False
    consumer.close()

    present = set(consumed)
    duplicates = len(consumed) - len(present)
    lost = sorted(set(acknowledged) - present)
    check(not lost, f"{len(lost)} acknowledged values are missing from the log, first {lost[:10]}")
    check(duplicates == 0, f"{duplicates} values appear more than once")
    out_of_order = next((i for i in range(1, len(consumed)) if consumed[i] <= consumed[i - 1]), None)
    check(out_of_order is None, f"values out of order at index {out_of_order}: "
                                f"{consumed[max(0, (out_of_order or 0) - 2):(out_of_order or 0) + 2]}")
    log(f"consumed {len(consumed)} values: all {len(acknowledged)} acknowledged present, none twice, in order; "
        f"leader moved {leader} -> {new_leader}")


if __name__ == "__main__":
    common.run_test(main)
