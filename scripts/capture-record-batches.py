#!/usr/bin/env python3
"""Capture RecordBatch v2 bytes from real Kafka clients, for Tern's golden codec tests.

A tiny fake Kafka broker listens on 127.0.0.1 and answers just enough of the protocol for a
producer to deliver one batch: ApiVersions, Metadata, InitProducerId and Produce. Every
partition's `records` field of every Produce request is written, byte for byte, to
`<work dir>/<topic>-<partition>-<sequence>.bin`. The script then runs the real clients (kcat and
confluent-kafka, both on librdkafka) against it and copies one batch per scenario to the fixture
directory.

Usage:
    python3 scripts/capture-record-batches.py [--out Tests/KafkaProtocolTests/Fixtures]
    python3 scripts/capture-record-batches.py --serve-only --port 19092   # just the fake broker

Needs: `apt-get install -y kcat` and `pip install confluent-kafka`. Python standard library only
otherwise.

What is advertised, and why (see shared REFERENCE.md sections 1-2):
- ApiVersions 0..3: librdkafka asks v3; a higher request gets a v0-format reply with error 35.
- Metadata 4..4: the highest version kcat's librdkafka 2.0.2 knows, and librdkafka 2.16 picks
  min(13, 4) = 4, so one response layout serves both.
- Produce 0..7: the minimum 0 is what makes librdkafka < 2.11.1 willing to compress at all; both
  clients pick v7 (v3+ is all this broker parses; both clients only use magic 2 batches).
- Fetch 4..4: never called, but librdkafka enables its MsgVer2 feature (magic 2 batches) only when
  both Produce 3 and Fetch 4 are offered.
- InitProducerId 0..1: the idempotent producer needs key 22; v0/v1 are not flexible.
"""

import argparse
import gzip
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22

ADVERTISED = [  # (api key, min version, max version), sorted by key as Kafka sends them
    (API_PRODUCE, 0, 7),
    (API_FETCH, 4, 4),
    (API_METADATA, 4, 4),
    (API_API_VERSIONS, 0, 3),
    (API_INIT_PRODUCER_ID, 0, 1),
]

ERROR_NONE = 0
ERROR_UNSUPPORTED_VERSION = 35
BROKER_NODE_ID = 1
PRODUCER_ID = 1000
PRODUCER_EPOCH = 0


class Reader:
    """Big-endian reads over one request body."""

    def __init__(self, data):
        self.data = data
        self.position = 0

    def take(self, count):
        if count < 0 or self.position + count > len(self.data):
            raise ValueError("request truncated")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def int8(self):
        return struct.unpack(">b", self.take(1))[0]

    def int16(self):
        return struct.unpack(">h", self.take(2))[0]

    def int32(self):
        return struct.unpack(">i", self.take(4))[0]

    def unsigned_varint(self):
        shift = 0
        result = 0
        while True:
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if byte & 0x80 == 0:
                return result
            shift += 7

    def nullable_string(self):
        length = self.int16()
        return None if length < 0 else self.take(length).decode("utf-8")

    def nullable_bytes(self):
        length = self.int32()
        return None if length < 0 else self.take(length)

    def skip_tagged_fields(self):
        for _ in range(self.unsigned_varint()):
            self.unsigned_varint()  # tag
            self.take(self.unsigned_varint())


def int16(value):
    return struct.pack(">h", value)


def int32(value):
    return struct.pack(">i", value)


def int64(value):
    return struct.pack(">q", value)


def string(text):
    encoded = text.encode("utf-8")
    return int16(len(encoded)) + encoded


def unsigned_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def array(items):
    return int32(len(items)) + b"".join(items)


class FakeBroker:
    """One listening socket, one thread per connection, requests answered in order."""

    def __init__(self, port, work_dir, log):
        self.work_dir = work_dir
        self.log = log
        self.lock = threading.Lock()
        self.next_offsets = {}  # (topic, partition) -> next base offset
        self.captures = []  # paths, in arrival order
        self.topics = []  # in order of first appearance, for Metadata with a null topic list
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]

    def serve_forever(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_connection, args=(connection,), daemon=True).start()

    def close(self):
        self.listener.close()

    def serve_connection(self, connection):
        with connection:
            while True:
                size_bytes = receive_exactly(connection, 4)
                if size_bytes is None:
                    return
                size = struct.unpack(">i", size_bytes)[0]
                if size < 0 or size > 64 * 1024 * 1024:
                    return
                frame = receive_exactly(connection, size)
                if frame is None:
                    return
                response = self.handle(frame)
                if response is not None:
                    connection.sendall(int32(len(response)) + response)

    def handle(self, frame):
        reader = Reader(frame)
        api_key = reader.int16()
        api_version = reader.int16()
        correlation_id = reader.int32()
        client_id = reader.nullable_string()
        if api_key == API_API_VERSIONS and api_version >= 3:
            reader.skip_tagged_fields()  # request header v2
        self.log(f"request api={api_key} v{api_version} client={client_id!r}")
        # Every response below uses header v0: ApiVersions always does, and no other advertised
        # version is flexible.
        header = int32(correlation_id)
        if api_key == API_API_VERSIONS:
            return header + self.api_versions(api_version)
        if api_key == API_METADATA and api_version == 4:
            return header + self.metadata(reader)
        if api_key == API_INIT_PRODUCER_ID and api_version <= 1:
            return header + self.init_producer_id()
        if api_key == API_PRODUCE and 3 <= api_version <= 7:
            body = self.produce(reader, api_version)
            return None if body is None else header + body
        self.log(f"unsupported request api={api_key} v{api_version}; closing")
        raise SystemExit  # ends this connection's thread only

    def api_versions(self, version):
        if version > 3:
            # Too new: answer in v0 format so the client can read it, and let it retry lower.
            keys = [int16(key) + int16(low) + int16(high) for key, low, high in ADVERTISED]
            return int16(ERROR_UNSUPPORTED_VERSION) + array(keys)
        if version == 3:
            keys = b"".join(int16(key) + int16(low) + int16(high) + unsigned_varint(0)
                            for key, low, high in ADVERTISED)
            return (int16(ERROR_NONE) + unsigned_varint(len(ADVERTISED) + 1) + keys
                    + int32(0) + unsigned_varint(0))
        keys = [int16(key) + int16(low) + int16(high) for key, low, high in ADVERTISED]
        body = int16(ERROR_NONE) + array(keys)
        return body + (int32(0) if version >= 1 else b"")

    def metadata(self, reader):
        count = reader.int32()
        requested = None if count < 0 else [reader.nullable_string() for _ in range(count)]
        with self.lock:
            for topic in requested or []:
                if topic not in self.topics:
                    self.topics.append(topic)
            topics = list(self.topics) if requested is None else requested
        broker = int32(BROKER_NODE_ID) + string("127.0.0.1") + int32(self.port) + int16(-1)
        topic_entries = []
        for topic in topics:
            partition = (int16(ERROR_NONE) + int32(0) + int32(BROKER_NODE_ID)
                         + array([int32(BROKER_NODE_ID)]) + array([int32(BROKER_NODE_ID)]))
            topic_entries.append(int16(ERROR_NONE) + string(topic) + b"\x00" + array([partition]))
        return (int32(0) + array([broker]) + string("tern-capture") + int32(BROKER_NODE_ID)
                + array(topic_entries))

    def init_producer_id(self):
        return int32(0) + int16(ERROR_NONE) + int64(PRODUCER_ID) + int16(PRODUCER_EPOCH)

    def produce(self, reader, version):
        transactional_id = reader.nullable_string()
        acks = reader.int16()
        reader.int32()  # timeout
        topic_responses = []
        for _ in range(reader.int32()):
            topic = reader.nullable_string()
            partition_responses = []
            for _ in range(reader.int32()):
                partition = reader.int32()
                records = reader.nullable_bytes() or b""
                base_offset = self.save(topic, partition, records, transactional_id)
                entry = int32(partition) + int16(ERROR_NONE) + int64(base_offset) + int64(-1)
                if version >= 5:
                    entry += int64(0)  # log start offset
                partition_responses.append(entry)
            topic_responses.append(string(topic) + array(partition_responses))
        if acks == 0:
            return None
        return array(topic_responses) + int32(0)

    def save(self, topic, partition, records, transactional_id):
        with self.lock:
            key = (topic, partition)
            base_offset = self.next_offsets.get(key, 0)
            record_count = count_records(records)
            self.next_offsets[key] = base_offset + record_count
            path = os.path.join(self.work_dir, f"{topic}-{partition}-{len(self.captures)}.bin")
            with open(path, "wb") as file:
                file.write(records)
            self.captures.append(path)
        self.log(f"produce {topic}-{partition}: {len(records)} bytes, {record_count} records, "
                 f"transactional id {transactional_id!r} -> {path}")
        return base_offset


def count_records(records):
    """Sum of recordsCount over the batches (header offset 57), to hand out base offsets."""
    total = 0
    position = 0
    while position + 61 <= len(records):
        batch_length = struct.unpack(">i", records[position + 8:position + 12])[0]
        total += struct.unpack(">i", records[position + 57:position + 61])[0]
        position += 12 + batch_length
    return total


def receive_exactly(connection, count):
    chunks = bytearray()
    while len(chunks) < count:
        chunk = connection.recv(count - len(chunks))
        if not chunk:
            return None
        chunks.extend(chunk)
    return bytes(chunks)


# --- scenarios -------------------------------------------------------------------------------

KCAT_INPUT = b"key-1:value one\nkey-2:value two\n:value with empty key\nkey-4:\n"


def run_kcat(port, topic, extra):
    command = ["kcat", "-P", "-b", f"127.0.0.1:{port}", "-t", topic, "-p", "0", "-K:",
               "-H", "trace-id=abc123", "-H", "source=kcat",
               "-X", "linger.ms=200", "-X", "api.version.request=true"] + extra
    print("$ printf %r | %s" % (KCAT_INPUT.decode(), " ".join(command)))
    subprocess.run(command, input=KCAT_INPUT, check=True, timeout=60)


CONFLUENT_PROGRAM = r"""
import sys
from confluent_kafka import Producer
port, topic, compression = sys.argv[1], sys.argv[2], sys.argv[3]
producer = Producer({
    "bootstrap.servers": f"127.0.0.1:{port}",
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 200,
    "compression.type": compression,
})
for index in range(5):
    producer.produce(topic, partition=0, key=f"order-{index}".encode(),
                     value=f"payload number {index} ".encode() * 3,
                     headers=[("content-type", b"text/plain"), ("index", str(index).encode())])
producer.produce(topic, partition=0, key=None, value=None)  # a tombstone without a key
remaining = producer.flush(30)
sys.exit(1 if remaining else 0)
"""


def run_confluent(port, topic, compression):
    command = [sys.executable, "-c", CONFLUENT_PROGRAM, str(port), topic, compression]
    print(f"$ python3 -c <confluent-kafka idempotent producer> {port} {topic} {compression}")
    subprocess.run(command, check=True, timeout=60)


SCENARIOS = [
    # (fixture file name, topic, runner)
    ("kcat-uncompressed.bin", "kcat-plain", lambda port, topic: run_kcat(port, topic, [])),
    ("kcat-gzip.bin", "kcat-gzip",
     lambda port, topic: run_kcat(port, topic, ["-z", "gzip"])),
    ("confluent-idempotent.bin", "confluent-idempotent",
     lambda port, topic: run_confluent(port, topic, "none")),
    ("confluent-idempotent-gzip.bin", "confluent-gzip",
     lambda port, topic: run_confluent(port, topic, "gzip")),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="Tests/KafkaProtocolTests/Fixtures")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--serve-only", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    arguments = parser.parse_args()

    work_dir = tempfile.mkdtemp(prefix="tern-capture-")
    log = (lambda message: None) if arguments.quiet else (lambda message: print("broker:", message))
    broker = FakeBroker(arguments.port, work_dir, log)
    print(f"fake broker on 127.0.0.1:{broker.port}, raw captures in {work_dir}")
    if arguments.serve_only:
        broker.serve_forever()
        return
    threading.Thread(target=broker.serve_forever, daemon=True).start()

    os.makedirs(arguments.out, exist_ok=True)
    for fixture, topic, runner in SCENARIOS:
        before = len(broker.captures)
        runner(broker.port, topic)
        time.sleep(0.2)
        captured = [path for path in broker.captures[before:]
                    if os.path.basename(path).startswith(topic + "-0-")]
        if len(captured) != 1:
            sys.exit(f"expected exactly one Produce for {topic}, got {len(captured)}")
        with open(captured[0], "rb") as file:
            data = file.read()
        if count_records(data) == 0 or 12 + struct.unpack(">i", data[8:12])[0] != len(data):
            sys.exit(f"{captured[0]} is not exactly one record batch")
        destination = os.path.join(arguments.out, fixture)
        shutil.copyfile(captured[0], destination)
        print(f"wrote {destination}: {len(data)} bytes, {count_records(data)} records, "
              f"attributes 0x{struct.unpack('>h', data[21:23])[0]:04x}")
        if struct.unpack(">h", data[21:23])[0] & 0x07 == 1:
            # Tern keeps compressed batches opaque; the gzip-decompressed records section lets
            # the tests check the fixture's content with the uncompressed record parser.
            companion = destination[:-len(".bin")] + ".records"
            with open(companion, "wb") as file:
                file.write(gzip.decompress(data[61:]))
            print(f"wrote {companion}: decompressed records section")
    broker.close()


if __name__ == "__main__":
    main()
