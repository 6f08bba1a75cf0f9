#!/usr/bin/env python3
"""aiokafka (asyncio, its own protocol code): an idempotent acks=all AIOKafkaProducer sends records
to two partitions; every send must be acknowledged, at strictly increasing offsets per partition.
An AIOKafkaConsumer with group_id=None assigns both partitions, seeks to the beginning and must read
every record, in order, at its acknowledged offset, none twice. Then what reached the broker, read
with a raw Fetch: per partition exactly the values sent, at those offsets, in plain batches that
carry one producer id and base sequences that continue each other from 0 (idempotence)."""

import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

import interop_common as common
import stored_batches
from interop_common import check, log

RECORDS = int(os.environ.get("TERN_INTEROP_AIOKAFKA_RECORDS", "5000"))
PARTITIONS = 2


def value_of(index):
    return b"aiokafka-%06d" % index


async def produce(topic):
    """{partition: [(offset, value)]} as acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=common.BOOTSTRAP, acks="all", enable_idempotence=True,
                                linger_ms=5, request_timeout_ms=60000, client_id="tern-interop-aiokafka")
    await producer.start()
    try:
        pending = [await producer.send(topic, key=b"%d" % i, value=value_of(i), partition=i % PARTITIONS)
                   for i in range(RECORDS)]
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 300)
    finally:
        await producer.stop()
    failed = [(i, result) for i, result in enumerate(results) if isinstance(result, BaseException)]
    check(not failed, f"{len(failed)} of {RECORDS} sends failed, first {failed[:3]}")
    acknowledged = {partition: [] for partition in range(PARTITIONS)}
    for i, metadata in enumerate(results):
        check(metadata.partition == i % PARTITIONS, f"record {i} landed in partition {metadata.partition}")
        acknowledged[metadata.partition].append((metadata.offset, value_of(i)))
    for partition, records in acknowledged.items():
        offsets = [offset for offset, _ in records]
        check(offsets == sorted(set(offsets)), f"partition {partition}: acknowledged offsets are not strictly increasing")
    return acknowledged


async def consume(topic):
    """{partition: [(offset, value)]} read from the beginning until every record is in."""
    consumer = AIOKafkaConsumer(bootstrap_servers=common.BOOTSTRAP, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="tern-interop-aiokafka")
    await consumer.start()
    received = {partition: [] for partition in range(PARTITIONS)}
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 300
        while sum(map(len, received.values())) < RECORDS:
            check(time.monotonic() < deadline, f"read only {[len(r) for r in received.values()]} of {RECORDS} records")
            for partition, records in (await consumer.getmany(timeout_ms=1000)).items():
                received[partition.partition].extend((record.offset, record.value) for record in records)
        # A little longer, so that records beyond the expected ones (duplicates) would show up too.
        for partition, records in (await consumer.getmany(timeout_ms=2000)).items():
            received[partition.partition].extend((record.offset, record.value) for record in records)
    finally:
        await consumer.stop()
    return received


def check_stored(topic, acknowledged):
    producer_ids = set()
    for partition in range(PARTITIONS):
        batches = stored_batches.stored_batches(topic, partition)
        compressed = [(batch.base_offset, batch.codec) for batch in batches if batch.codec != "none"]
        check(not compressed, f"partition {partition}: compressed batches though none was asked for: {compressed[:3]}")
        stored = [(offset, value) for batch in batches for offset, _, value in batch.records]
        check(stored == acknowledged[partition],
              f"partition {partition}: the broker stores {len(stored)} records, {len(acknowledged[partition])} were "
              f"acknowledged; first stored {stored[:2]}, first acknowledged {acknowledged[partition][:2]}")
        next_sequence = 0
        for batch in batches:
            check(batch.base_sequence == next_sequence,
                  f"partition {partition}: batch at {batch.base_offset} has base sequence {batch.base_sequence}, "
                  f"expected {next_sequence}")
            next_sequence += batch.record_count
            producer_ids.add(batch.producer_id)
    check(len(producer_ids) == 1 and min(producer_ids) >= 0,
          f"the batches carry producer ids {sorted(producer_ids)}, expected one idempotent producer's")
    log(f"the broker stores exactly the acknowledged records, in plain batches of producer {producer_ids.pop()} "
        f"with contiguous sequences")


def main():
    topic = common.unique_topic("aiokafka")
    common.create_topic(topic, PARTITIONS, 3)
    acknowledged = asyncio.run(produce(topic))
    log(f"aiokafka produced {RECORDS} records; acknowledged offsets per partition "
        f"{ {p: (r[0][0], r[-1][0]) for p, r in acknowledged.items()} }")
    received = asyncio.run(consume(topic))
    for partition in range(PARTITIONS):
        values = [value for _, value in received[partition]]
        check(received[partition] == acknowledged[partition],
              f"partition {partition}: read {len(values)} records, {len(acknowledged[partition])} acknowledged, "
              f"{len(values) - len(set(values))} duplicates, first {received[partition][:2]}")
    log(f"aiokafka consumer read all {RECORDS} records in order at their acknowledged offsets")
    check_stored(topic, acknowledged)


if __name__ == "__main__":
    common.run_test(main)
