#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus: valid Kafka request frames (without the 4-byte size prefix,
as decodeKafkaRequest receives them) for the APIs and versions clients really send, plus a bare
RecordBatch. Usage: Fuzz/make-seeds.py OUTPUT_DIR. Standard library only."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Interop"))
import kafka_wire as wire  # noqa: E402


def main():
    output = sys.argv[1]
    os.makedirs(output, exist_ok=True)
    batch = wire.record_batch([b"seed-%d" % i for i in range(3)])
    idempotent = wire.record_batch([b"x" * 40, b"y"], producer_id=1000, producer_epoch=0, base_sequence=7)
    seeds = {"record-batch": batch, "record-batch-idempotent": idempotent}
    for version in (0, 1, 2, 3, 4):
        seeds[f"api-versions-v{version}"] = wire.api_versions_request(version, version)
    for version in (0, 1, 4, 8, 9, 10, 12):
        seeds[f"metadata-v{version}-all"] = wire.metadata_request(version, 1)
        seeds[f"metadata-v{version}-one"] = wire.metadata_request(version, 2, ["topic-a"])
    for version in (3, 7, 8, 9, 10, 11):
        seeds[f"produce-v{version}"] = wire.produce_request(version, 3, "topic-a", 0, batch)
        seeds[f"produce-v{version}-idempotent"] = wire.produce_request(version, 4, "topic-a", 1, idempotent)
    for version in (4, 11, 12):
        seeds[f"fetch-v{version}"] = wire.fetch_request(version, 5, "topic-a", 0, 42)
    for version in (1, 2, 5, 7):
        seeds[f"list-offsets-v{version}"] = wire.list_offsets_request(version, 6, "topic-a", 0)
    for version in (0, 1, 3, 4):
        seeds[f"init-producer-id-v{version}"] = wire.init_producer_id_request(version, 7)
    for version in (2, 4, 5, 7):
        seeds[f"create-topics-v{version}"] = wire.create_topics_request(version, 8, "topic-b", 3, 3)
    for version in (1, 4):
        seeds[f"delete-topics-v{version}"] = wire.delete_topics_request(version, 9, "topic-b")
    for name, frame in seeds.items():
        payload = frame if name.startswith("record-batch") else frame[4:]  # drop the size prefix
        with open(os.path.join(output, name), "wb") as file:
            file.write(payload)
    print(f"fuzz: {len(seeds)} seed inputs in {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
