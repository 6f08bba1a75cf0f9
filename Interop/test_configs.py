#!/usr/bin/env python3
"""Topic configs as Kafka shows and changes them. confluent-kafka's describe_configs lists every
config Tern applies to a topic, with its value and source (the topic's own, the broker's
server.properties, or the default) and the broker synonym; incremental_alter_configs sets and
deletes topic configs through the controller, refuses a bad value naming the key, and a change
takes effect on the running brokers: retention.bytes set on a topic full of segments shrinks
every broker's copy on disk. The legacy AlterConfigs (confluent-kafka's alter_configs) replaces a
topic's whole set; kafka-python's alter_configs, incremental, keeps the rest.
A broker's own configs read back as read-only, with what its server.properties set."""

import pathlib
import subprocess
import time
import warnings

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource as LegacyResource, ConfigResourceType

import interop_common as common
from interop_common import check, log

DYNAMIC_TOPIC, STATIC_BROKER, DEFAULT = 1, 4, 5
SEGMENT_BYTES = 4096
APPLIED = {"segment.bytes", "segment.ms", "retention.bytes", "retention.ms", "message.timestamp.type", "min.insync.replicas"}


def describe(admin, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=60)


def alter(admin, topic, entries):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)
    return admin.incremental_alter_configs([resource], request_timeout=30)[resource].result(timeout=60)


def wait_until(description, condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        check(time.monotonic() < deadline, f"not within {seconds:.0f} s: {description}")
        time.sleep(0.5)


def segment_bytes_on(node, topic):
    directory = pathlib.Path(common.CLUSTER_DIR) / "data" / f"node-{node}" / f"{topic}-0"
    return sum(path.stat().st_size for path in directory.glob("*.log"))


def describe_and_change(admin, topic):
    described = describe(admin, topic)
    check(APPLIED <= set(described), f"{topic}: described {sorted(described)}, missing {sorted(APPLIED - set(described))}")
    retention = described["retention.ms"]
    check(retention.value == "3600000" and retention.source == DYNAMIC_TOPIC, f"{topic}: retention.ms {retention}")
    synonyms = {synonym.name: (synonym.value, synonym.source) for synonym in retention.synonyms.values()}
    check(synonyms.get("log.retention.ms") == ("604800000", DEFAULT), f"{topic}: retention.ms synonyms {synonyms}")
    check(described["segment.ms"].source == DEFAULT and described["segment.ms"].value == "604800000",
          f"{topic}: segment.ms {described['segment.ms']}")
    check(described["min.insync.replicas"].source == STATIC_BROKER and described["min.insync.replicas"].value == "2",
          f"{topic}: min.insync.replicas {described['min.insync.replicas']} (server.properties sets 2)")

    alter(admin, topic, [ConfigEntry("retention.bytes", str(3 * SEGMENT_BYTES), incremental_operation=AlterConfigOpType.SET),
                         ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    wait_until(f"{topic}: the change shows", lambda: describe(admin, topic)["retention.bytes"].source == DYNAMIC_TOPIC)
    described = describe(admin, topic)
    check(described["retention.bytes"].value == str(3 * SEGMENT_BYTES), f"{topic}: retention.bytes {described['retention.bytes']}")
    check(described["retention.ms"].source == DEFAULT, f"{topic}: retention.ms not deleted: {described['retention.ms']}")
    try:
        alter(admin, topic, [ConfigEntry("segment.bytes", "12", incremental_operation=AlterConfigOpType.SET)])
        raise common.InteropFailure(f"{topic}: segment.bytes=12 was accepted")
    except KafkaException as error:
        check(error.args[0].name() == "INVALID_CONFIG" and "segment.bytes" in error.args[0].str(),
              f"{topic}: segment.bytes=12 refused with {error}")
    log(f"{topic}: described with sources and synonyms; retention.bytes set, retention.ms deleted, a bad value refused")


def change_takes_effect(admin, topic):
    producer = KafkaProducer(bootstrap_servers=common.bootstrap_addresses(), acks="all", batch_size=2048)
    for index in range(600):
        producer.send(topic, value=f"{index}-".encode().ljust(200, b"x"), partition=0)
    producer.flush(timeout=180)
    producer.close()
    wait_until(f"{topic}: every broker's copy within retention.bytes plus one segment",
               lambda: all(segment_bytes_on(node, topic) <= 4 * SEGMENT_BYTES for node in range(1, common.BROKER_COUNT + 1)))
    log(f"{topic}: every broker's copy shrank to {[segment_bytes_on(n, topic) for n in range(1, common.BROKER_COUNT + 1)]} bytes")


def legacy_alter_replaces_the_set(admin, topic):
    """confluent-kafka's (deprecated) alter_configs sends AlterConfigs, which replaces the whole
    set; kafka-python's, on a broker with IncrementalAlterConfigs, sends that instead."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "7200000"})
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # deprecated, and still what we test
    admin.alter_configs([resource], request_timeout=30)[resource].result(timeout=60)
    wait_until(f"{topic}: the legacy change shows", lambda: describe(admin, topic)["retention.ms"].value == "7200000")
    described = describe(admin, topic)
    check(described["retention.bytes"].source == DEFAULT and described["segment.bytes"].source == DEFAULT,
          f"{topic}: AlterConfigs left {described['retention.bytes']} and {described['segment.bytes']}")
    legacy = KafkaAdminClient(bootstrap_servers=common.bootstrap_addresses(), request_timeout_ms=60000)
    result = legacy.alter_configs([LegacyResource(ConfigResourceType.TOPIC, topic, configs={"retention.bytes": "65536"})])
    legacy.close()
    wait_until(f"{topic}: kafka-python's change shows", lambda: describe(admin, topic)["retention.bytes"].value == "65536")
    check(describe(admin, topic)["retention.ms"].value == "7200000", f"{topic}: an incremental change lost retention.ms ({result})")
    log(f"{topic}: confluent-kafka's AlterConfigs replaced the topic's whole set; kafka-python's incremental change kept it")


def broker_configs(admin):
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    described = admin.describe_configs([resource], request_timeout=30)[resource].result(timeout=60)
    interval = described["log.retention.check.interval.ms"]
    check(interval.value == "2000" and interval.source == STATIC_BROKER and interval.is_read_only,
          f"broker 1: log.retention.check.interval.ms {interval}")
    check(described["log.retention.ms"].source == DEFAULT, f"broker 1: log.retention.ms {described['log.retention.ms']}")
    log(f"broker 1: {len(described)} configs, read-only, server.properties values marked static")


def tern_cli(topic):
    """`tern configs set|delete|describe` against the same cluster."""
    def tern(*arguments):
        return subprocess.run([common.TERN_BINARY, "configs", *arguments, "--topic", topic, "--bootstrap", common.BOOTSTRAP],
                              capture_output=True, text=True, timeout=60)
    changed = tern("set", "retention.ms=5400000", "segment.ms=3600000")
    check(changed.returncode == 0, f"tern configs set: {changed.stdout}{changed.stderr}")
    wait_until(f"{topic}: tern's change shows", lambda: "retention.ms=5400000  (DYNAMIC_TOPIC_CONFIG)" in tern("describe").stdout)
    check("segment.ms=3600000  (DYNAMIC_TOPIC_CONFIG)" in tern("describe").stdout, f"{topic}: {tern('describe').stdout}")
    deleted = tern("delete", "segment.ms")
    check(deleted.returncode == 0, f"tern configs delete: {deleted.stdout}{deleted.stderr}")
    wait_until(f"{topic}: tern's delete shows", lambda: "segment.ms=604800000  (DEFAULT_CONFIG)" in tern("describe").stdout)
    refused = tern("set", "segment.bytes=1")
    check(refused.returncode != 0 and "INVALID_CONFIG" in refused.stderr and "segment.bytes" in refused.stderr,
          f"tern configs set segment.bytes=1: exit {refused.returncode}, {refused.stderr}")
    log(f"{topic}: tern configs set, delete and describe; a bad value refused naming the key")


def main():
    admin = common.admin_client()
    topic = common.unique_topic("configs")
    common.create_topic(topic, 1, config={"retention.ms": "3600000", "segment.bytes": str(SEGMENT_BYTES)})
    describe_and_change(admin, topic)
    change_takes_effect(admin, topic)
    legacy_alter_replaces_the_set(admin, topic)
    broker_configs(admin)
    tern_cli(topic)


if __name__ == "__main__":
    common.run_test(main)
