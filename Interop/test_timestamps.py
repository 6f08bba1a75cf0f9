#!/usr/bin/env python3
"""Record timestamps. ListOffsets by timestamp, as three clients ask it: confluent-kafka's and
kafka-python's offsets_for_times and kcat -Q. Records go in with explicit CreateTime timestamps,
some of them out of order; the expected answer for every probe is computed from what the broker
stores (a raw Fetch of every batch, kafka_wire), not from what was sent: the first stored record
whose timestamp is at or after the probe. A probe later than every record finds nothing, and the
KIP-734 max-timestamp query (-3, kafka_wire) names the newest record.

Then a topic created with message.timestamp.type=LogAppendTime: records sent with a 1970
CreateTime are stored with the LogAppendTime bit and the broker's clock as the batch's max
timestamp; confluent-kafka's delivery reports and both clients' consumers see LogAppendTime and
that time."""

import re
import subprocess
import time

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition as ConfluentPartition
from kafka import KafkaConsumer, TopicPartition

import interop_common as common
import kafka_wire as wire
from interop_common import check, log
from stored_batches import stored_batches

START = 1_700_000_000_000
# Mostly a second apart; two records step back in time (producers' clocks disagree).
TIMESTAMPS = [START + 1_000 * index for index in range(40)]
TIMESTAMPS[17] = START + 3_500
TIMESTAMPS[30] = START + 100


def produce(topic):
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "acks": "all", "linger.ms": 5,
                         "enable.idempotence": True, "message.timeout.ms": 120000})
    failures = []
    for index, timestamp in enumerate(TIMESTAMPS):
        producer.produce(topic, value=f"record-{index}".encode(), partition=0, timestamp=timestamp,
                         on_delivery=lambda error, _: error and failures.append(error))
    check(producer.flush(180) == 0, "records still unacknowledged after 180 s")
    check(not failures, f"delivery failed: {failures}")


def stored_timestamps(topic):
    """(offset, timestamp) of every stored record, in offset order."""
    records = []
    for batch in stored_batches(topic, 0):
        check(batch.timestamps is not None, f"batch at {batch.base_offset} is compressed; the test sends plain batches")
        records.extend(sorted(batch.timestamps.items()))
    check([timestamp for _, timestamp in records] == TIMESTAMPS, f"stored timestamps {records} differ from those sent")
    return records


def expected(records, probe):
    return next(((offset, timestamp) for offset, timestamp in records if timestamp >= probe), None)


def probes(records):
    found = sorted({timestamp for _, timestamp in records})
    return [START - 5] + [t + delta for t in found for delta in (-1, 0, 1)]


def confluent_lookups(topic, records):
    consumer = Consumer({"bootstrap.servers": common.BOOTSTRAP, "group.id": "unused", "socket.timeout.ms": 30000})
    try:
        for probe in probes(records):
            [answer] = consumer.offsets_for_times([ConfluentPartition(topic, 0, probe)], timeout=30)
            check(answer.error is None, f"confluent-kafka offsets_for_times({probe}) failed: {answer.error}")
            want = expected(records, probe)
            check(answer.offset == (want[0] if want else -1),
                  f"confluent-kafka offsets_for_times({probe}) = {answer.offset}, stored records say {want}")
    finally:
        consumer.close()
    log(f"confluent-kafka: {len(probes(records))} offsets_for_times probes match the stored records")


def kafka_python_lookups(topic, records):
    consumer = KafkaConsumer(bootstrap_servers=common.bootstrap_addresses(), client_id="tern-interop-timestamps",
                             request_timeout_ms=60000)
    try:
        partition = TopicPartition(topic, 0)
        for probe in probes(records):
            answer = consumer.offsets_for_times({partition: probe})[partition]
            want = expected(records, probe)
            got = (answer.offset, answer.timestamp) if answer is not None else None
            check(got == want, f"kafka-python offsets_for_times({probe}) = {got}, stored records say {want}")
    finally:
        consumer.close()
    log(f"kafka-python: {len(probes(records))} offsets_for_times probes match, timestamps included")


def kcat_lookups(topic, records):
    for probe in (START - 5, START + 3_499, START + 17_000, START + 39_000, START + 39_001):
        output = subprocess.run(["kcat", "-b", common.BOOTSTRAP, "-X", "socket.timeout.ms=30000", "-Q",
                                 "-t", f"{topic}:0:{probe}"], capture_output=True, text=True, timeout=120)
        check(output.returncode == 0, f"kcat -Q {probe} exited {output.returncode}: {output.stderr}")
        match = re.search(r"\[0\]\s+offset\s+(-?\d+)", output.stdout)
        check(match is not None, f"kcat -Q {probe} printed no offset: {output.stdout!r} {output.stderr!r}")
        want = expected(records, probe)
        check(int(match.group(1)) == (want[0] if want else -1),
              f"kcat -Q {probe} = {match.group(1)}, stored records say {want}")
    log("kcat -Q: five probes match the stored records")


def max_timestamp_lookup(topic, records):
    """ListOffsets v7 with -3 (KIP-734), sent raw to the partition's leader."""
    newest = max(timestamp for _, timestamp in records)
    want = next(offset for offset, timestamp in records if timestamp == newest)
    for address in common.bootstrap_addresses():
        with wire.connect(address) as sock:
            sock.sendall(wire.list_offsets_request(7, 9, topic, 0, timestamp=-3))
            payload = wire.read_frame(sock)
        answer = wire.parse_list_offsets_response(payload, 7)
        if answer.error_code != 0:
            continue  # not the leader
        check((answer.offset, answer.timestamp) == (want, newest),
              f"max timestamp (-3) = {(answer.offset, answer.timestamp)}, stored records say {(want, newest)}")
        log(f"ListOffsets -3 names offset {want}, timestamp {newest}")
        return
    raise common.InteropFailure("no broker answered ListOffsets -3 as leader")


def log_append_time():
    topic = common.unique_topic("log-append-time")
    common.create_topic(topic, 1, config={"message.timestamp.type": "LogAppendTime"})
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 120000})
    reports = []
    before = int(time.time() * 1000)
    for index in range(10):
        producer.produce(topic, value=f"stamped-{index}".encode(), partition=0, timestamp=1_000 + index,
                         on_delivery=lambda error, message: reports.append((error, message.timestamp())))
        producer.poll(0)
    check(producer.flush(120) == 0, "records still unacknowledged after 120 s")
    after = int(time.time() * 1000)
    check(len(reports) == 10 and all(error is None for error, _ in reports), f"delivery failed: {reports}")

    def stamped(kind, stamp, who):
        check(kind == TIMESTAMP_LOG_APPEND_TIME or kind == 1, f"{who}: timestamp type {kind}, expected LogAppendTime")
        check(before - 1_000 <= stamp <= after + 1_000, f"{who}: timestamp {stamp} is not the broker's clock "
                                                        f"(sent between {before} and {after})")

    for _, (kind, stamp) in reports:
        stamped(kind, stamp, "confluent-kafka delivery report")
    batches = stored_batches(topic, 0)
    check(sum(batch.record_count for batch in batches) == 10, f"{len(batches)} stored batches do not hold the 10 records")
    for batch in batches:
        check(batch.attributes & 0x08, f"stored batch at {batch.base_offset} lacks the LogAppendTime bit")
        check(before - 1_000 <= batch.max_timestamp <= after + 1_000,
              f"stored batch at {batch.base_offset} has max timestamp {batch.max_timestamp}, not the broker's clock")

    consumer = Consumer({"bootstrap.servers": common.BOOTSTRAP, "group.id": "unused", "enable.auto.commit": False,
                         "socket.timeout.ms": 30000})
    consumer.assign([ConfluentPartition(topic, 0, 0)])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 10 and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            seen.append(message.timestamp())
    consumer.close()
    check(len(seen) == 10, f"confluent-kafka read {len(seen)} of 10 records")
    for kind, stamp in seen:
        stamped(kind, stamp, "confluent-kafka consumer")

    reader = KafkaConsumer(bootstrap_servers=common.bootstrap_addresses(), client_id="tern-interop-timestamps",
                           auto_offset_reset="earliest", consumer_timeout_ms=30000, request_timeout_ms=60000)
    reader.assign([TopicPartition(topic, 0)])
    read = [(record.timestamp_type, record.timestamp) for _, record in zip(range(10), reader)]
    reader.close()
    check(len(read) == 10, f"kafka-python read {len(read)} of 10 records")
    for kind, stamp in read:
        stamped(kind, stamp, "kafka-python consumer")
    log("LogAppendTime: stored batches, delivery reports and both consumers carry the broker's clock")


def main():
    log_append_time()
    topic = common.unique_topic("timestamps")
    common.create_topic(topic, 1)
    produce(topic)
    records = stored_timestamps(topic)
    log(f"{len(records)} records stored with their CreateTime timestamps, two out of order")
    confluent_lookups(topic, records)
    kafka_python_lookups(topic, records)
    kcat_lookups(topic, records)
    max_timestamp_lookup(topic, records)


if __name__ == "__main__":
    common.run_test(main)
