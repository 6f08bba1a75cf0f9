#!/usr/bin/env python3
"""Compressed batches from each Python client: confluent-kafka (librdkafka), kafka-python and
aiokafka each produce records to a one-partition topic per codec (gzip, snappy, lz4, zstd) and read
them back with the same client (which decompresses; the broker stores batches as sent). The round
trip must return exactly the records in order, and the batches the broker stores, read with a raw
Fetch, must carry the codec the client was asked for: a client that quietly falls back to plain
batches fails the test.

EXPECTED UNCOMPRESSED: librdkafka enables lz4 only when the broker advertises FindCoordinator,
which Tern does not serve yet, so confluent-kafka's lz4 batches are stored plain; the test asserts
exactly that, and fails once FindCoordinator is served (then expect lz4 there too).
"""

import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as AIOTopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonTopicPartition

import interop_common as common
import stored_batches
from interop_common import check, log

RECORDS = int(os.environ.get("TERN_INTEROP_COMPRESSION_RECORDS", "2000"))
CODECS = ("gzip", "snappy", "lz4", "zstd")
READ_SECONDS = 120


def values_for(client, codec):
    # Repetitive enough that every codec shrinks a batch (a client may send a batch plain when
    # compressing does not make it smaller).
    return [b"%s-%s-%06d-%s" % (client.encode(), codec.encode(), i, b"abcdefgh" * 4) for i in range(RECORDS)]


# --- confluent-kafka ----------------------------------------------------------------------------

def confluent_round_trip(topic, codec, values):
    failures = []
    producer = Producer({"bootstrap.servers": common.BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                         "compression.type": codec, "linger.ms": 50, "message.timeout.ms": 120000})
    for value in values:
        while True:
            try:
                producer.produce(topic, value=value, partition=0,
                                 on_delivery=lambda error, _: failures.append(str(error)) if error else None)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(180)
    check(remaining == 0 and not failures, f"confluent-kafka {codec}: {remaining} undelivered, failures {failures[:3]}")

    consumer = Consumer({"bootstrap.servers": common.BOOTSTRAP, "group.id": "tern-interop-unused",
                         "enable.auto.commit": False})
    consumer.assign([ConfluentTopicPartition(topic, 0, OFFSET_BEGINNING)])
    received = []
    deadline = time.monotonic() + READ_SECONDS
    while len(received) < len(values):
        check(time.monotonic() < deadline, f"confluent-kafka {codec}: read only {len(received)} of {len(values)}")
        for message in consumer.consume(num_messages=10000, timeout=1.0):
            check(message.error() is None, f"confluent-kafka {codec}: consumer error {message.error()}")
            received.append(message.value())
    consumer.close()
    return received


# --- kafka-python -------------------------------------------------------------------------------

def kafka_python_round_trip(topic, codec, values):
    servers = common.bootstrap_addresses()
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", compression_type=codec, linger_ms=50,
                             retries=10, request_timeout_ms=60000, client_id="tern-interop-compression")
    futures = [producer.send(topic, value=value, partition=0) for value in values]
    producer.flush(timeout=180)
    failed = [f.exception for f in futures if not f.succeeded()]
    check(not failed, f"kafka-python {codec}: {len(failed)} sends failed, first {failed[:3]}")
    producer.close(timeout=30)

    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="tern-interop-compression")
    partition = KafkaPythonTopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    received = []
    deadline = time.monotonic() + READ_SECONDS
    while len(received) < len(values):
        check(time.monotonic() < deadline, f"kafka-python {codec}: read only {len(received)} of {len(values)}")
        for records in consumer.poll(timeout_ms=1000).values():
            received.extend(record.value for record in records)
    consumer.close()
    return received


# --- aiokafka -----------------------------------------------------------------------------------

def aiokafka_round_trip(topic, codec, values):
    return asyncio.run(aiokafka_round_trip_async(topic, codec, values))


async def aiokafka_round_trip_async(topic, codec, values):
    producer = AIOKafkaProducer(bootstrap_servers=common.BOOTSTRAP, acks="all", enable_idempotence=True,
                                compression_type=codec, linger_ms=50, request_timeout_ms=60000)
    await producer.start()
    try:
        batches = [await producer.send(topic, value=value, partition=0) for value in values]
        await asyncio.wait_for(asyncio.gather(*batches), 180)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=common.BOOTSTRAP, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    received = []
    try:
        partition = AIOTopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + READ_SECONDS
        while len(received) < len(values):
            check(time.monotonic() < deadline, f"aiokafka {codec}: read only {len(received)} of {len(values)}")
            for records in (await consumer.getmany(partition, timeout_ms=1000)).values():
                received.extend(record.value for record in records)
    finally:
        await consumer.stop()
    return received


CLIENTS = (
    # (name, round trip, codec stored when `codec` is asked for)
    ("confluent-kafka", confluent_round_trip, lambda codec: "none" if codec == "lz4" else codec),  # see the docstring
    ("kafka-python", kafka_python_round_trip, lambda codec: codec),
    ("aiokafka", aiokafka_round_trip, lambda codec: codec),
)


def main():
    for client, round_trip, stored_codec in CLIENTS:
        for codec in CODECS:
            topic = common.unique_topic(f"compression-{client}-{codec}")
            common.create_topic(topic, 1, 3)
            values = values_for(client, codec)
            received = round_trip(topic, codec, values)
            check(received == values, f"{client} {codec}: read {len(received)} records, expected {len(values)} in order "
                                      f"({len(set(received) - set(values))} unexpected values)")
            stored = stored_batches.check_codec(topic, 1, stored_codec(codec), f"{client} compression.type={codec}")
            check(stored == len(values), f"{client} {codec}: the broker stores {stored} records, {len(values)} were sent")
        log(f"{client}: {RECORDS} records round-tripped with each of {', '.join(CODECS)}")


if __name__ == "__main__":
    common.run_test(main)
