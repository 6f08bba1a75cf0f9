"""Hand-written Kafka wire encoding for tests that must send bytes no client library would send.

Standard library only. Follows ../shared/kafka-protocol/REFERENCE.md: §1 (framing, headers,
classic and compact encodings) and §3 (RecordBatch v2 with CRC-32C). Used by the malformed-frame
tests (Interop/test_malformed_frames.py), the fuzzer's seed corpus (Fuzz/make-seeds.py), and
reading back the batches a broker stores (Interop/stored_batches.py).
"""

import socket
import struct

# --- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, table-driven -------------------------

def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table

_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"  # the catalogue's check value


# --- primitive encodings ------------------------------------------------------------------------

def uvarint(value: int) -> bytes:
    assert value >= 0
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(value: int) -> bytes:
    """Zig-zag VARINT/VARLONG (record format only)."""
    return uvarint((value << 1) ^ (value >> 63))


def int8(v): return struct.pack(">b", v)
def int16(v): return struct.pack(">h", v)
def int32(v): return struct.pack(">i", v)
def int64(v): return struct.pack(">q", v)
def boolean(v): return b"\x01" if v else b"\x00"


def string(value, flexible=False):
    """STRING / NULLABLE_STRING, or their COMPACT forms when flexible."""
    if value is None:
        return uvarint(0) if flexible else int16(-1)
    data = value.encode()
    return uvarint(len(data) + 1) + data if flexible else int16(len(data)) + data


def nullable_bytes(value, flexible=False):
    if value is None:
        return uvarint(0) if flexible else int32(-1)
    return uvarint(len(value) + 1) + value if flexible else int32(len(value)) + value


def array(items, flexible=False):
    """`items` are already-encoded elements (each with its own tagged fields when flexible)."""
    if items is None:
        return uvarint(0) if flexible else int32(-1)
    head = uvarint(len(items) + 1) if flexible else int32(len(items))
    return head + b"".join(items)


def tags(flexible):
    """An empty tagged-field section (flexible versions only)."""
    return uvarint(0) if flexible else b""


# --- RecordBatch v2 -----------------------------------------------------------------------------

def record(offset_delta: int, value: bytes, key=None, timestamp_delta=0) -> bytes:
    body = (int8(0) + varint(timestamp_delta) + varint(offset_delta)
            + (varint(-1) if key is None else varint(len(key)) + key)
            + varint(len(value)) + value
            + varint(0))  # no headers
    return varint(len(body)) + body


def record_batch(values, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 base_timestamp=1_700_000_000_000, corrupt_crc=False) -> bytes:
    """One uncompressed batch with base offset 0, as a client sends it in Produce."""
    records = b"".join(record(i, v) for i, v in enumerate(values))
    after_crc = (int16(0)                                   # attributes: no compression, CreateTime
                 + int32(len(values) - 1)                   # lastOffsetDelta
                 + int64(base_timestamp) + int64(base_timestamp)
                 + int64(producer_id) + int16(producer_epoch) + int32(base_sequence)
                 + int32(len(values)) + records)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x1
    after_length = int32(0) + int8(2) + struct.pack(">I", crc) + after_crc  # leader epoch, magic, crc
    return int64(0) + int32(len(after_length)) + after_length


# --- requests -----------------------------------------------------------------------------------

def request_header(api_key, version, correlation_id, client_id="tern-interop", flexible=False) -> bytes:
    """Request header v1, or v2 (with a tagged-field section) for flexible versions; client_id is
    a classic nullable string in both."""
    return int16(api_key) + int16(version) + int32(correlation_id) + string(client_id) + tags(flexible)


def frame(payload: bytes) -> bytes:
    return int32(len(payload)) + payload


def request(api_key, version, correlation_id, body, flexible, client_id="tern-interop") -> bytes:
    """A whole request frame including the size prefix."""
    return frame(request_header(api_key, version, correlation_id, client_id, flexible) + body)


API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA = 0, 1, 2, 3
API_API_VERSIONS, API_CREATE_TOPICS, API_DELETE_TOPICS, API_INIT_PRODUCER_ID = 18, 19, 20, 22


def api_versions_request(version, correlation_id) -> bytes:
    flexible = version >= 3
    body = (string("tern-interop", True) + string("1.0", True) + tags(True)) if flexible else b""
    return request(API_API_VERSIONS, version, correlation_id, body, flexible)


def metadata_request(version, correlation_id, topics=None) -> bytes:
    """topics=None asks for every topic (null array, v1+); v0 uses an empty array for that."""
    flexible = version >= 9
    if topics is None and version == 0:
        topics = []
    items = None
    if topics is not None:
        items = [(b"\x00" * 16 if version >= 10 else b"") + string(name, flexible) + tags(flexible)
                 for name in topics]
    body = array(items, flexible)
    if version >= 4:
        body += boolean(False)  # AllowAutoTopicCreation
    if 8 <= version <= 10:
        body += boolean(False)  # IncludeClusterAuthorizedOperations
    if version >= 8:
        body += boolean(False)  # IncludeTopicAuthorizedOperations
    return request(API_METADATA, version, correlation_id, body + tags(flexible), flexible)


def produce_request(version, correlation_id, topic, partition, records, acks=-1, timeout_ms=30_000,
                    transactional_id=None) -> bytes:
    flexible = version >= 9
    partition_data = int32(partition) + nullable_bytes(records, flexible) + tags(flexible)
    topic_data = string(topic, flexible) + array([partition_data], flexible) + tags(flexible)
    body = (string(transactional_id, flexible) + int16(acks) + int32(timeout_ms)
            + array([topic_data], flexible) + tags(flexible))
    return request(API_PRODUCE, version, correlation_id, body, flexible)


def fetch_request(version, correlation_id, topic, partition, offset=0) -> bytes:
    flexible = version >= 12
    part = int32(partition)
    if version >= 9:
        part += int32(-1)  # CurrentLeaderEpoch
    part += int64(offset)
    if version >= 12:
        part += int32(-1)  # LastFetchedEpoch
    if version >= 5:
        part += int64(-1)  # LogStartOffset
    part += int32(1 << 20) + tags(flexible)
    body = int32(-1) + int32(500) + int32(1)  # ReplicaId, MaxWaitMs, MinBytes
    if version >= 3:
        body += int32(50 << 20)
    if version >= 4:
        body += int8(0)
    if version >= 7:
        body += int32(0) + int32(-1)  # SessionId, SessionEpoch
    body += array([string(topic, flexible) + array([part], flexible) + tags(flexible)], flexible)
    if version >= 7:
        body += array([], flexible)  # ForgottenTopicsData
    if version >= 11:
        body += string("", flexible)  # RackId
    return request(API_FETCH, version, correlation_id, body + tags(flexible), flexible)


def list_offsets_request(version, correlation_id, topic, partition, timestamp=-2) -> bytes:
    flexible = version >= 6
    part = int32(partition) + (int32(-1) if version >= 4 else b"") + int64(timestamp)
    if version == 0:
        part += int32(1)
    part += tags(flexible)
    body = int32(-1) + (int8(0) if version >= 2 else b"")
    body += array([string(topic, flexible) + array([part], flexible) + tags(flexible)], flexible)
    return request(API_LIST_OFFSETS, version, correlation_id, body + tags(flexible), flexible)


def init_producer_id_request(version, correlation_id) -> bytes:
    flexible = version >= 2
    body = string(None, flexible) + int32(-1)
    if version >= 3:
        body += int64(-1) + int16(-1)
    return request(API_INIT_PRODUCER_ID, version, correlation_id, body + tags(flexible), flexible)


def create_topics_request(version, correlation_id, topic, partitions=1, replication_factor=1) -> bytes:
    flexible = version >= 5
    creatable = (string(topic, flexible) + int32(partitions) + int16(replication_factor)
                 + array([], flexible) + array([], flexible) + tags(flexible))
    body = array([creatable], flexible) + int32(30_000) + (boolean(False) if version >= 1 else b"")
    return request(API_CREATE_TOPICS, version, correlation_id, body + tags(flexible), flexible)


def delete_topics_request(version, correlation_id, topic) -> bytes:
    flexible = version >= 4
    if version >= 6:
        topics = array([string(topic, flexible) + b"\x00" * 16 + tags(flexible)], flexible)
    else:
        topics = array([string(topic, flexible)], flexible)
    return request(API_DELETE_TOPICS, version, correlation_id, topics + int32(30_000) + tags(flexible), flexible)


# --- responses ----------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes):
        self.data, self.position = data, 0

    def take(self, count):
        if self.position + count > len(self.data):
            raise ValueError(f"response truncated: wanted {count} bytes at {self.position} of {len(self.data)}")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def int8(self): return struct.unpack(">b", self.take(1))[0]
    def int16(self): return struct.unpack(">h", self.take(2))[0]
    def int32(self): return struct.unpack(">i", self.take(4))[0]
    def int64(self): return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("uvarint too long")

    def string(self, flexible):
        length = self.uvarint() - 1 if flexible else self.int16()
        return None if length < 0 else self.take(length).decode()

    def nullable_bytes(self, flexible):
        length = self.uvarint() - 1 if flexible else self.int32()
        return None if length < 0 else self.take(length)

    def varint(self):
        """Zig-zag VARINT/VARLONG (record format only)."""
        value = self.uvarint()
        return (value >> 1) ^ -(value & 1)

    def array_count(self, flexible):
        return self.uvarint() - 1 if flexible else self.int32()

    def skip_tags(self, flexible):
        if not flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()              # tag
            self.take(self.uvarint())   # size, data

    def remaining(self):
        return len(self.data) - self.position


def read_exactly(sock, count):
    chunks, remaining = [], count
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock, max_bytes=64 << 20):
    """One response frame without its size prefix, or None if the peer closed the connection first."""
    head = read_exactly(sock, 4)
    if head is None:
        return None
    size = struct.unpack(">i", head)[0]
    if size < 0 or size > max_bytes:
        raise ValueError(f"response frame size {size} is out of range")
    return read_exactly(sock, size)


def parse_api_versions_response(payload):
    """Header v0 always (KIP-511), body v0 layout: (correlation_id, error_code, {key: (min, max)})."""
    reader = Reader(payload)
    correlation_id = reader.int32()
    error_code = reader.int16()
    keys = {}
    for _ in range(reader.int32()):
        key = reader.int16()
        keys[key] = (reader.int16(), reader.int16())
    return correlation_id, error_code, keys


def parse_produce_response(payload, version):
    """(correlation_id, [(topic, partition, error_code, base_offset)]) for Produce v3+."""
    flexible = version >= 9
    reader = Reader(payload)
    correlation_id = reader.int32()
    reader.skip_tags(flexible)
    partitions = []
    for _ in range(reader.array_count(flexible)):
        topic = reader.string(flexible)
        for _ in range(reader.array_count(flexible)):
            index, error_code, base_offset = reader.int32(), reader.int16(), reader.int64()
            reader.int64()                      # LogAppendTimeMs (v2+)
            if version >= 5:
                reader.int64()                  # LogStartOffset
            if version >= 8:
                for _ in range(reader.array_count(flexible)):
                    reader.int32()
                    reader.string(flexible)
                    reader.skip_tags(flexible)
                reader.string(flexible)         # ErrorMessage
            reader.skip_tags(flexible)
            partitions.append((topic, index, error_code, base_offset))
        reader.skip_tags(flexible)
    reader.int32()                              # ThrottleTimeMs
    reader.skip_tags(flexible)
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} bytes after the Produce v{version} response")
    return correlation_id, partitions


class ListedOffset:
    def __init__(self, error_code, timestamp, offset, leader_epoch):
        self.error_code, self.timestamp, self.offset, self.leader_epoch = error_code, timestamp, offset, leader_epoch


def parse_list_offsets_response(payload, version):
    """The one partition a `list_offsets_request` asked about (v4+): a ListedOffset."""
    flexible = version >= 6
    reader = Reader(payload)
    reader.int32()                              # CorrelationId
    reader.skip_tags(flexible)                  # response header v1
    reader.int32()                              # ThrottleTimeMs
    topics = reader.uvarint() - 1 if flexible else reader.int32()
    if topics != 1:
        raise ValueError(f"ListOffsets answered {topics} topics, expected 1")
    reader.string(flexible)
    partitions = reader.uvarint() - 1 if flexible else reader.int32()
    if partitions != 1:
        raise ValueError(f"ListOffsets answered {partitions} partitions, expected 1")
    reader.int32()                              # PartitionIndex
    error_code, timestamp, offset, leader_epoch = reader.int16(), reader.int64(), reader.int64(), reader.int32()
    return ListedOffset(error_code, timestamp, offset, leader_epoch)


def connect(address, timeout=30.0):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def parse_fetch_response(payload, version):
    """(correlation_id, error_code, [FetchedPartition]) for Fetch v4-v12."""
    flexible = version >= 12
    reader = Reader(payload)
    correlation_id = reader.int32()
    reader.skip_tags(flexible)                  # response header v1
    reader.int32()                              # ThrottleTimeMs
    error_code = 0
    if version >= 7:
        error_code = reader.int16()
        reader.int32()                          # SessionId
    partitions = []
    for _ in range(reader.array_count(flexible)):
        topic = reader.string(flexible)
        for _ in range(reader.array_count(flexible)):
            index, partition_error, high_watermark = reader.int32(), reader.int16(), reader.int64()
            reader.int64()                      # LastStableOffset
            log_start_offset = reader.int64() if version >= 5 else -1
            for _ in range(max(reader.array_count(flexible), 0)):   # AbortedTransactions
                reader.int64()
                reader.int64()
                reader.skip_tags(flexible)
            if version >= 11:
                reader.int32()                  # PreferredReadReplica
            records = reader.nullable_bytes(flexible) or b""
            reader.skip_tags(flexible)
            partitions.append(FetchedPartition(topic, index, partition_error, high_watermark, log_start_offset, records))
        reader.skip_tags(flexible)
    reader.skip_tags(flexible)
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} bytes after the Fetch v{version} response")
    return correlation_id, error_code, partitions


class FetchedPartition:
    def __init__(self, topic, partition, error_code, high_watermark, log_start_offset, records):
        self.topic, self.partition, self.error_code = topic, partition, error_code
        self.high_watermark, self.log_start_offset, self.records = high_watermark, log_start_offset, records


CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class StoredBatch:
    """One RecordBatch v2 as a broker served it: its header and, when uncompressed, its records'
    (offset, key, value) and each record's timestamp (`timestamps`, offset -> ms)."""

    def __init__(self, base_offset, last_offset_delta, attributes, producer_id, base_sequence, record_count, records,
                 max_timestamp=-1, timestamps=None):
        self.base_offset, self.last_offset_delta, self.attributes = base_offset, last_offset_delta, attributes
        self.producer_id, self.base_sequence, self.record_count = producer_id, base_sequence, record_count
        self.records, self.max_timestamp, self.timestamps = records, max_timestamp, timestamps

    @property
    def codec(self):
        return CODEC_NAMES.get(self.attributes & 0x7, f"unknown codec {self.attributes & 0x7}")

    @property
    def last_offset(self):
        return self.base_offset + self.last_offset_delta


def parse_record_batches(data: bytes):
    """The complete RecordBatch v2 batches at the start of `data` (a Fetch answer may end with a
    partial batch, which is left out). Checks each batch's magic and CRC-32C."""
    batches = []
    position = 0
    while len(data) - position >= 61:
        base_offset, batch_length = struct.unpack_from(">qi", data, position)
        end = position + 12 + batch_length
        if batch_length < 49 or end > len(data):
            break
        magic = data[position + 16]
        if magic != 2:
            raise ValueError(f"batch at offset {base_offset} has magic {magic}, not 2")
        stored_crc = struct.unpack_from(">I", data, position + 17)[0]
        if crc32c(data[position + 21:end]) != stored_crc:
            raise ValueError(f"batch at offset {base_offset} fails its CRC-32C check")
        attributes, last_offset_delta, base_timestamp, max_timestamp = struct.unpack_from(">hiqq", data, position + 21)
        producer_id, _, base_sequence, record_count = struct.unpack_from(">qhii", data, position + 43)
        records, timestamps = None, None
        if attributes & 0x7 == 0:
            records, timestamps = _parse_records(data[position + 61:end], base_offset, record_count, base_timestamp)
        batches.append(StoredBatch(base_offset, last_offset_delta, attributes, producer_id, base_sequence,
                                   record_count, records, max_timestamp, timestamps))
        position = end
    return batches


def _parse_records(data, base_offset, count, base_timestamp):
    reader = Reader(data)
    records, timestamps = [], {}
    for _ in range(count):
        length = reader.varint()
        body = Reader(reader.take(length))
        body.int8()                             # attributes
        timestamp = base_timestamp + body.varint()
        offset = base_offset + body.varint()
        timestamps[offset] = timestamp
        key_length = body.varint()
        key = None if key_length < 0 else body.take(key_length)
        value_length = body.varint()
        value = None if value_length < 0 else body.take(value_length)
        records.append((offset, key, value))
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} bytes after the {count} records of the batch at {base_offset}")
    return records, timestamps


def parse_metadata_response_v1(payload):
    """Metadata v1: (correlation_id, {node_id: (host, port)}, controller_id,
    {topic: (error_code, {partition: (error_code, leader, replicas, isr)})})."""
    reader = Reader(payload)
    correlation_id = reader.int32()
    brokers = {}
    for _ in range(reader.int32()):
        node_id, host, port = reader.int32(), reader.string(False), reader.int32()
        reader.string(False)                    # Rack
        brokers[node_id] = (host, port)
    controller_id = reader.int32()
    topics = {}
    for _ in range(reader.int32()):
        error_code, name = reader.int16(), reader.string(False)
        reader.int8()                           # IsInternal
        partitions = {}
        for _ in range(reader.int32()):
            partition_error, index, leader = reader.int16(), reader.int32(), reader.int32()
            replicas = [reader.int32() for _ in range(reader.int32())]
            isr = [reader.int32() for _ in range(reader.int32())]
            partitions[index] = (partition_error, leader, replicas, isr)
        topics[name] = (error_code, partitions)
    if reader.remaining():
        raise ValueError(f"{reader.remaining()} bytes after the Metadata v1 response")
    return correlation_id, brokers, controller_id, topics
