#!/usr/bin/env python3
"""A partition moved to another broker with kafka-python's alter_partition_reassignments (Kafka's
AlterPartitionReassignments, API 45, sent to the broker Metadata names as controller, which
forwards it to the active controller).

One partition, replication factor 2, 20 records written with acks=all. The reassignment swaps
one replica for the broker that held none: the answer must accept it, every broker's own
Metadata must then show the target replicas all in the ISR, the new replica's log directory must
hold the records on its disk and the removed replica's directory must be gone, and the leader
must still serve all 20 records, once each, in order. Cancelling a reassignment of a partition
that is not moving (null replicas) must answer NO_REASSIGNMENT_IN_PROGRESS.
"""

import os
import time

from confluent_kafka import Producer
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import NoReassignmentInProgressError

import interop_common as common
import stored_batches
from interop_common import check, log

RECORDS = 20


def value_of(sequence):
    return b"moved-%04d" % sequence


def produce(topic):
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "acks": "all", "enable.idempotence": True})
    delivered = []
    for sequence in range(RECORDS):
        producer.produce(topic, value=value_of(sequence), partition=0,
                         on_delivery=lambda error, message: delivered.append((error, message.value())))
    check(producer.flush(60) == 0, "records still unsent after 60 s")
    errors = [error for error, _ in delivered if error is not None]
    check(not errors and len(delivered) == RECORDS, f"{len(delivered)} delivered, errors {errors[:3]}")
    log(f"wrote {RECORDS} records with acks=all")


def partition_directory(node, topic):
    return os.path.join(common.CLUSTER_DIR, "data", f"node-{node}", f"{topic}-0")


def wait_until_moved(addresses, topic, target):
    """Until every broker's own Metadata shows exactly the target replicas, all in the ISR."""
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        views = {node: common.BrokerView(address, [topic]).partition(topic, 0) for node, address in addresses.items()}
        if all(view is not None and sorted(view[2]) == sorted(target) and sorted(view[3]) == sorted(target)
               for view in views.values()):
            return views
        check(time.monotonic() < deadline, f"{topic}-0 never settled on replicas {target}: {views}")
        time.sleep(0.5)


def main():
    topic = common.unique_topic("reassigned")
    common.create_topic(topic, 1, replication_factor=2)
    produce(topic)
    addresses = common.client_addresses()
    before = common.BrokerView(addresses[min(addresses)], [topic]).partition(topic, 0)
    replicas = before[2]
    spare = [node for node in sorted(addresses) if node not in replicas]
    check(len(replicas) == 2 and len(spare) == 1, f"{topic}-0 has replicas {replicas} among brokers {sorted(addresses)}")
    kept, removed = replicas[0], replicas[1]
    target = [spare[0], kept]
    log(f"{topic}-0: replicas {replicas}, leader {before[1]}; moving it to {target}")

    admin = KafkaAdminClient(bootstrap_servers=common.bootstrap_addresses(), client_id="tern-interop-reassign",
                             request_timeout_ms=60000)
    partition = TopicPartition(topic, 0)
    results = admin.alter_partition_reassignments({partition: target}, timeout_ms=30000)
    check(results == {partition: None}, f"the reassignment was not accepted: {results}")
    views = wait_until_moved(addresses, topic, target)
    log(f"every broker shows replicas {target} all in the ISR: {views}")

    new_directory = partition_directory(spare[0], topic)
    check(os.path.isdir(new_directory), f"node {spare[0]} has no directory {new_directory}")
    stored_bytes = sum(os.path.getsize(os.path.join(new_directory, name))
                       for name in os.listdir(new_directory) if name.endswith(".log"))
    check(stored_bytes > RECORDS * len(value_of(0)), f"node {spare[0]} stores only {stored_bytes} bytes of {topic}-0")
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while os.path.exists(partition_directory(removed, topic)):
        check(time.monotonic() < deadline, f"node {removed} still has {topic}-0 on disk after it left the replicas")
        time.sleep(0.5)
    log(f"node {spare[0]} stores {stored_bytes} bytes of {topic}-0; node {removed}'s copy is gone")

    batches = stored_batches.stored_batches(topic, 0)
    stored = [value for batch in batches for _, _, value in batch.records]
    check(stored == [value_of(sequence) for sequence in range(RECORDS)],
          f"the leader serves {len(stored)} records after the move, not the {RECORDS} written in order")
    log(f"the leader serves all {RECORDS} records, once each, in order")

    results = admin.alter_partition_reassignments({partition: None}, timeout_ms=30000)
    check(results == {partition: NoReassignmentInProgressError},
          f"cancelling a reassignment of a partition that is not moving answered {results}")
    log("cancelling when nothing moves answers NO_REASSIGNMENT_IN_PROGRESS")
    admin.close()


if __name__ == "__main__":
    common.run_test(main)
