#!/usr/bin/env python3
"""Topic administration through both clients' admin APIs: confluent-kafka's AdminClient
(create_topics, a second create that must fail with TOPIC_ALREADY_EXISTS, list_topics,
delete_topics) and kafka-python's KafkaAdminClient (create_topics, list_topics, delete_topics).
After each create the topic must appear in metadata with its partitions and replicas, and after
each delete it must disappear."""

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic as ConfluentNewTopic
from kafka.admin import KafkaAdminClient

import interop_common as common
from interop_common import check, log


def wait_until_absent(client, topic):
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        if topic not in client.list_topics(timeout=10).topics:
            return
        check(time.monotonic() < deadline, f"topic {topic} still in metadata after it was deleted")
        time.sleep(0.5)


def confluent_admin():
    client = common.admin_client()
    topic = common.unique_topic("admin-confluent")
    futures = client.create_topics([ConfluentNewTopic(topic, num_partitions=4, replication_factor=3)],
                                   operation_timeout=60, request_timeout=60)
    futures[topic].result(timeout=120)
    found = common.wait_for_topic(client, topic, 4)
    for partition in found.partitions.values():
        check(len(partition.replicas) == 3, f"{topic}-{partition.id} replicas {partition.replicas}, expected 3")
        check(len(set(partition.replicas)) == 3, f"{topic}-{partition.id} replicas repeat a broker: {partition.replicas}")
    check(topic in client.list_topics(timeout=30).topics, f"{topic} missing from the full topic list")
    log(f"confluent-kafka created {topic} (4 partitions, RF 3)")

    again = client.create_topics([ConfluentNewTopic(topic, num_partitions=1, replication_factor=3)],
                                 operation_timeout=60, request_timeout=60)
    try:
        again[topic].result(timeout=120)
        raise common.InteropFailure(f"creating {topic} a second time succeeded")
    except KafkaException as error:
        code = error.args[0].code()
        check(code == KafkaError.TOPIC_ALREADY_EXISTS, f"second create of {topic} failed with {error}, "
                                                       f"expected TOPIC_ALREADY_EXISTS")
    log("confluent-kafka: creating it again fails with TOPIC_ALREADY_EXISTS")

    futures = client.delete_topics([topic], operation_timeout=60, request_timeout=60)
    futures[topic].result(timeout=120)
    wait_until_absent(client, topic)
    log(f"confluent-kafka deleted {topic}; it is gone from metadata")


def kafka_python_admin():
    client = KafkaAdminClient(bootstrap_servers=common.bootstrap_addresses(), client_id="tern-interop-admin",
                              request_timeout_ms=60000)
    observer = common.admin_client()  # a second client's view of metadata
    topic = common.unique_topic("admin-kafka-python")
    client.create_topics({topic: {"num_partitions": 2, "replication_factor": 3}}, timeout_ms=60000)
    common.wait_for_topic(observer, topic, 2)
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while topic not in client.list_topics():
        check(time.monotonic() < deadline, f"kafka-python list_topics never showed {topic}")
        time.sleep(0.5)
    log(f"kafka-python created {topic} (2 partitions, RF 3); both clients see it")

    client.delete_topics([topic], timeout_ms=60000)
    wait_until_absent(observer, topic)
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while topic in client.list_topics():
        check(time.monotonic() < deadline, f"kafka-python list_topics still shows deleted {topic}")
        time.sleep(0.5)
    client.close()
    log(f"kafka-python deleted {topic}; both clients see it gone")


def main():
    confluent_admin()
    kafka_python_admin()


if __name__ == "__main__":
    common.run_test(main)
