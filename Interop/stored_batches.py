"""What reached the broker: every batch of a partition as its leader serves it to a raw Fetch
(kafka_wire), independent of the client that produced it and of any client's decompression. A
test that asks a client for a codec checks here that the stored batches carry it (RecordBatch v2
attributes, bits 0-2), since a client may quietly send plain batches instead (librdkafka does,
for lz4, when the broker does not advertise FindCoordinator).

    python3 Interop/stored_batches.py TOPIC PARTITIONS CODEC
        exits 1 unless every partition holds at least one batch and all are stored with CODEC
        (none, gzip, snappy, lz4 or zstd); for the shell tests.
"""

import sys
import time

import interop_common as common
import kafka_wire as wire

FETCH_VERSION = 11


def fetch_once(address, topic, partition, offset):
    """One Fetch at `offset` from the broker at `address`: a kafka_wire.FetchedPartition."""
    with wire.connect(address) as sock:
        sock.sendall(wire.fetch_request(FETCH_VERSION, 1, topic, partition, offset))
        payload = wire.read_frame(sock)
    common.check(payload is not None, f"{address} closed the connection on a Fetch of {topic}-{partition}")
    _, error_code, partitions = wire.parse_fetch_response(payload, FETCH_VERSION)
    common.check(error_code == 0, f"{address}: Fetch of {topic}-{partition} failed with error {error_code}")
    common.check(len(partitions) == 1 and (partitions[0].topic, partitions[0].partition) == (topic, partition),
                 f"{address}: Fetch of {topic}-{partition} answered for {[(p.topic, p.partition) for p in partitions]}")
    return partitions[0]


def stored_batches(topic, partition, deadline_seconds=common.METADATA_WAIT_SECONDS):
    """Every batch of `topic`-`partition` below the high watermark, read from whichever broker
    answers the Fetch as leader (the others answer with an error). Retries while no broker leads."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        errors = {}
        for address in common.bootstrap_addresses():
            try:
                answer = fetch_once(address, topic, partition, 0)
            except (OSError, ValueError, common.InteropFailure) as error:
                errors[address] = str(error)
                continue
            if answer.error_code != 0:
                errors[address] = f"error {answer.error_code}"
                continue
            return read_to_high_watermark(address, topic, partition, answer)
        common.check(time.monotonic() < deadline, f"no broker serves {topic}-{partition}: {errors}")
        time.sleep(0.5)


def read_to_high_watermark(address, topic, partition, answer):
    batches = []
    while True:
        found = wire.parse_record_batches(answer.records)
        batches.extend(found)
        next_offset = batches[-1].last_offset + 1 if batches else 0
        if next_offset >= answer.high_watermark:
            return batches
        common.check(found, f"{address}: Fetch of {topic}-{partition} at {next_offset} returned no whole batch "
                            f"below the high watermark {answer.high_watermark}")
        answer = fetch_once(address, topic, partition, next_offset)
        common.check(answer.error_code == 0, f"{address}: Fetch of {topic}-{partition} at {next_offset} "
                                             f"failed with error {answer.error_code}")


def check_codec(topic, partitions, codec, client):
    """Fails unless every partition of `topic` holds batches and all are stored with `codec`.
    Returns the number of records stored."""
    summary = []
    total = 0
    for partition in range(partitions):
        batches = stored_batches(topic, partition)
        common.check(batches, f"{client}: {topic}-{partition} holds no batch")
        wrong = [(batch.base_offset, batch.codec) for batch in batches if batch.codec != codec]
        common.check(not wrong, f"{client} asked for {codec}, but {len(wrong)} of the {len(batches)} batches in "
                                f"{topic}-{partition} are stored otherwise, (base offset, codec): {wrong[:5]}")
        records = sum(batch.record_count for batch in batches)
        summary.append(f"{len(batches)} batches, {records} records")
        total += records
    common.log(f"{client}: {topic} stores only {codec} batches ({'; '.join(summary)})")
    return total


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in wire.CODEC_NAMES.values():
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    common.run_test(lambda: check_codec(sys.argv[1], int(sys.argv[2]), sys.argv[3], "stored batches"))
