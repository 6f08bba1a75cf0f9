#!/usr/bin/env python3
"""A topic deleted while one of its brokers is down, then created again under the same name, must
start empty: no record of the deleted topic may come back.

Three partitions, replication factor 3: 300 records (100 per partition, acks=all), then kill -9
of a broker that leads a partition, delete the topic (it succeeds with two nodes up), start the
broker again and wait until every broker lists it as registered and unfenced, and create a topic
with the same name. Every partition of the new topic, read by a raw Fetch from its leader, must
be empty with log start and high watermark 0; then 30 new records (10 per partition) must be
acknowledged at offsets 0-9 and be all that each partition serves.

(Issue 10: the returning broker kept the deleted topic's partition directories, which record no
topic id, and the new topic reopened them: the partition it led served the 300 deleted records'
share at offsets 0-99, and new writes started at 100.)
"""

import time

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

import interop_common as common
import stored_batches
from interop_common import check, log

PARTITIONS = 3
OLD_PER_PARTITION = 100
NEW_PER_PARTITION = 10


def produce(topic, values_by_partition):
    """Produces every value to its partition (idempotent, acks=all); returns {partition: [offset]}."""
    offsets = {partition: [] for partition in values_by_partition}
    failures = []
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "message.timeout.ms": 120000})

    def on_delivery(error, message):
        if error is None:
            offsets[message.partition()].append(message.offset())
        else:
            failures.append(str(error))

    for partition, values in sorted(values_by_partition.items()):
        for value in values:
            producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
    remaining = producer.flush(180)
    check(remaining == 0 and not failures, f"{remaining} records undelivered, failures {failures[:3]}")
    return offsets


def delete_topic(topic):
    client = common.admin_client()
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        try:
            client.delete_topics([topic], operation_timeout=60, request_timeout=60)[topic].result(timeout=120)
            break
        except Exception as error:  # the cluster may still be noticing the kill; the deletion must succeed
            check(time.monotonic() < deadline, f"deleting {topic} with two nodes up keeps failing: {error}")
            log(f"delete of {topic} failed ({error}); retrying")
            time.sleep(1)
    while topic in client.list_topics(timeout=10).topics:
        check(time.monotonic() < deadline, f"{topic} still in metadata after it was deleted")
        time.sleep(0.5)
    log(f"deleted {topic} with two of three nodes up")


def create_again(topic):
    client = common.admin_client()
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        try:
            client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                                 operation_timeout=60, request_timeout=60)[topic].result(timeout=120)
            break
        except Exception as error:  # e.g. the deletion not yet complete everywhere
            check(time.monotonic() < deadline, f"creating {topic} again keeps failing: {error}")
            log(f"create of {topic} failed ({error}); retrying")
            time.sleep(1)
    return common.wait_for_topic(client, topic, PARTITIONS)


def main():
    topic = common.unique_topic("recreated")
    common.create_topic(topic, PARTITIONS, 3)
    addresses = common.client_addresses()
    old = {p: [b"deleted-%s-%d-%03d" % (topic.encode(), p, i) for i in range(OLD_PER_PARTITION)]
           for p in range(PARTITIONS)}
    produce(topic, old)
    log(f"produced {PARTITIONS * OLD_PER_PARTITION} records to {topic}")

    view = common.BrokerView(addresses[min(addresses)], [topic])
    leaders = {p: view.partition(topic, p)[1] for p in range(PARTITIONS)}
    candidates = sorted(set(leaders.values()) - {view.controller}) or sorted(set(leaders.values()))
    victim = candidates[0]
    log(f"leaders {leaders}, active controller {view.controller}; killing node {victim}")
    common.kill_node(victim)
    delete_topic(topic)

    common.restart_node(victim)
    common.wait_until_live(victim, addresses)
    found = create_again(topic)
    new_leaders = {p: found.partitions[p].leader for p in range(PARTITIONS)}
    log(f"created {topic} again: leaders {new_leaders} (node {victim} returned)")

    problems = []
    for partition in range(PARTITIONS):
        batches = stored_batches.stored_batches(topic, partition)
        served = [(offset, value) for batch in batches for offset, _, value in (batch.records or [])]
        if batches:
            deleted = sum(1 for _, value in served if value.startswith(b"deleted-"))
            problems.append(f"partition {partition} (leader {new_leaders[partition]}) of the new topic serves "
                            f"offsets {batches[0].base_offset}..{batches[-1].last_offset} before any write, "
                            f"{deleted} of them records of the deleted topic, first {served[:2]}")
    check(not problems, "the re-created topic is not empty:\n  " + "\n  ".join(problems))
    log("every partition of the re-created topic is empty")

    new = {p: [b"new-%s-%d-%03d" % (topic.encode(), p, i) for i in range(NEW_PER_PARTITION)] for p in range(PARTITIONS)}
    offsets = produce(topic, new)
    for partition in range(PARTITIONS):
        check(offsets[partition] == list(range(NEW_PER_PARTITION)),
              f"partition {partition}: new writes acknowledged at offsets {offsets[partition]}, expected 0..{NEW_PER_PARTITION - 1}")
        batches = stored_batches.stored_batches(topic, partition)
        served = [(offset, value) for batch in batches for offset, _, value in batch.records]
        expected = list(enumerate(new[partition]))
        check(served == expected, f"partition {partition} serves {len(served)} records after the new writes, "
                                  f"expected only the {len(expected)} new ones at 0..{len(expected) - 1}; first {served[:2]}")
    log(f"the new writes start at offset 0 and are all each partition serves")


if __name__ == "__main__":
    common.run_test(main)
