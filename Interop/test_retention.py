#!/usr/bin/env python3
"""The log's start moves: DeleteRecords through kafka-python's admin client, and retention by size
and by time (topic configs retention.bytes / retention.ms; Interop/run checks retention every 2 s).
Judged by what the brokers hold: every broker's segment files on disk, ListOffsets earliest from
confluent-kafka, and a confluent-kafka consumer that asks for a deleted offset and is moved by its
auto.offset.reset to the new log start."""

import pathlib
import time

from confluent_kafka import Consumer, TopicPartition as ConfluentPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import OffsetOutOfRangeError
from kafka.structs import TopicPartition

import interop_common as common
from interop_common import check, log

SEGMENT_BYTES = 4096
RECORD_BYTES = 200
WAIT_SECONDS = 60.0


def produce(topic, count, prefix):
    producer = KafkaProducer(bootstrap_servers=common.bootstrap_addresses(), acks="all", batch_size=2048,
                             request_timeout_ms=60000, max_block_ms=120000)
    futures = [producer.send(topic, value=f"{prefix}-{index}-".encode().ljust(RECORD_BYTES, b"x"), partition=0)
               for index in range(count)]
    producer.flush(timeout=180)
    offsets = [future.get(timeout=60).offset for future in futures]
    producer.close()
    check(offsets == list(range(offsets[0], offsets[0] + count)), f"{topic}: offsets not contiguous: {offsets[:5]}...")
    return offsets


def segment_files(node, topic):
    """The `.log` files of `topic`-0 in the data directory of `node`, by base offset."""
    directory = pathlib.Path(common.CLUSTER_DIR) / "data" / f"node-{node}" / f"{topic}-0"
    return {int(path.stem): path.stat().st_size for path in directory.glob("*.log")}


def watermarks(topic):
    consumer = Consumer({"bootstrap.servers": common.BOOTSTRAP, "group.id": "tern-interop-retention"})
    try:
        return consumer.get_watermark_offsets(ConfluentPartition(topic, 0), timeout=30, cached=False)
    finally:
        consumer.close()


def wait_until(description, condition):
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        outcome = condition()
        if outcome:
            return outcome
        check(time.monotonic() < deadline, f"not within {WAIT_SECONDS:.0f} s: {description}")
        time.sleep(0.5)


def every_broker_starts_at(topic, start):
    """True once no broker holds a segment wholly below `start`: a segment is wholly below it when
    the next segment's base is at or below it."""
    for node in range(1, common.BROKER_COUNT + 1):
        bases = sorted(segment_files(node, topic))
        if not bases or (len(bases) > 1 and bases[1] <= start) or bases[0] > start:
            return False
    return True


def first_consumed_offset(topic, asked):
    """Where a confluent-kafka consumer assigned at `asked` (below the log start) really starts."""
    consumer = Consumer({"bootstrap.servers": common.BOOTSTRAP, "group.id": "tern-interop-retention",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([ConfluentPartition(topic, 0, asked)])
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                return message.offset()
        raise common.InteropFailure(f"{topic}: the consumer read nothing within {WAIT_SECONDS:.0f} s")
    finally:
        consumer.close()


def delete_records():
    topic = common.unique_topic("delete-records")
    common.create_topic(topic, 1, config={"segment.bytes": str(SEGMENT_BYTES)})
    produce(topic, 200, "delete")
    admin = KafkaAdminClient(bootstrap_servers=common.bootstrap_addresses(), request_timeout_ms=60000)
    result = admin.delete_records({TopicPartition(topic, 0): 120}, timeout_ms=60000)
    low = result[TopicPartition(topic, 0)]
    check(low["error_code"] == 0 and low["low_watermark"] == 120, f"{topic}: DeleteRecords answered {low}")
    log(f"{topic}: DeleteRecords before 120 answered {low}")
    check(watermarks(topic) == (120, 200), f"{topic}: watermarks {watermarks(topic)}, expected (120, 200)")
    wait_until(f"{topic}: every broker deletes the segments below 120", lambda: every_broker_starts_at(topic, 120))
    first = first_consumed_offset(topic, 5)
    check(first == 120, f"{topic}: a consumer asking for offset 5 started at {first}, expected 120")
    try:
        admin.delete_records({TopicPartition(topic, 0): 500}, timeout_ms=30000)
        raise common.InteropFailure(f"{topic}: DeleteRecords past the high watermark succeeded")
    except OffsetOutOfRangeError:
        pass
    admin.close()
    check(watermarks(topic) == (120, 200), f"{topic}: a refused DeleteRecords moved the watermarks: {watermarks(topic)}")
    log(f"{topic}: log start 120 on every broker; a consumer at offset 5 resets to 120; past the high watermark refused")


def retention_by_size():
    topic = common.unique_topic("retention-bytes")
    retention_bytes = 5 * SEGMENT_BYTES
    common.create_topic(topic, 1, config={"segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(retention_bytes)})
    produce(topic, 600, "size")  # about 30 segments

    def bounded():
        sizes = [sum(segment_files(node, topic).values()) for node in range(1, common.BROKER_COUNT + 1)]
        return sizes if all(size <= retention_bytes + SEGMENT_BYTES for size in sizes) else None

    sizes = wait_until(f"{topic}: every broker's copy within retention.bytes plus one segment", bounded)
    low, high = watermarks(topic)
    check(high == 600 and 0 < low < 600, f"{topic}: watermarks ({low}, {high})")
    check(every_broker_starts_at(topic, low), f"{topic}: brokers hold segments below the log start {low}")
    log(f"{topic}: {sizes} bytes on the three brokers (retention.bytes {retention_bytes}), log start {low}")


def retention_by_time():
    topic = common.unique_topic("retention-ms")
    common.create_topic(topic, 1, config={"segment.bytes": str(SEGMENT_BYTES), "retention.ms": "3000"})
    produce(topic, 100, "time")
    # Every record expires 3 s after it was written: the active segment is rolled and goes too.
    wait_until(f"{topic}: everything expired", lambda: watermarks(topic) == (100, 100))
    wait_until(f"{topic}: every broker deleted every expired segment", lambda: every_broker_starts_at(topic, 100))
    produce(topic, 10, "later")
    check(watermarks(topic) == (100, 110), f"{topic}: after new writes watermarks {watermarks(topic)}")
    log(f"{topic}: every record expired after retention.ms, on every broker; new writes continue at 100")


def main():
    delete_records()
    retention_by_size()
    retention_by_time()


if __name__ == "__main__":
    common.run_test(main)
