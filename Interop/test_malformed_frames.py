#!/usr/bin/env python3
"""Bad input on raw sockets: each malformed frame gets an error response or a closed connection,
and afterwards the broker still serves other clients (ApiVersions v0 on a new socket to every
broker, and kcat -L). Request bytes are written by hand (Interop/kafka_wire.py, following
REFERENCE.md §1 and §3).

  (a) negative frame size                  -> connection closed
  (b) 2 GB frame size                      -> connection closed, nothing that large allocated
  (c) unknown API key                      -> error response or closed
  (d) Metadata version above the supported -> error response or closed
  (e) truncated body (frame complete)      -> error response or closed
  (e') frame cut short, then end of stream -> connection closed
  (f) Produce v9 with a bad batch CRC      -> Produce response, partition error CORRUPT_MESSAGE (2);
      the same batch with its CRC intact is accepted (so the request itself is well formed)
  (g) ApiVersions above the supported max  -> v0 response with UNSUPPORTED_VERSION (35) listing key 18
"""

import socket
import struct
import subprocess
import time

import interop_common as common
import kafka_wire as wire
from interop_common import check, log

CORRUPT_MESSAGE = 2
UNSUPPORTED_VERSION = 35
REPLY_TIMEOUT_SECONDS = 30.0


def outcome(sock, correlation_id):
    """What the broker did after a malformed request: ('closed', None) or ('response', payload).
    A response must echo the correlation id; silence until the timeout fails the test."""
    sock.settimeout(REPLY_TIMEOUT_SECONDS)
    try:
        payload = wire.read_frame(sock)
    except (ConnectionResetError, BrokenPipeError):
        return "closed", None
    except socket.timeout:
        raise common.InteropFailure(f"no response and no close within {REPLY_TIMEOUT_SECONDS:.0f} s")
    if payload is None:
        return "closed", None
    check(len(payload) >= 4, f"response of {len(payload)} bytes has no correlation id")
    got = struct.unpack(">i", payload[:4])[0]
    check(got == correlation_id, f"response correlation id {got}, sent {correlation_id}")
    return "response", payload


def expect_closed(sock, what):
    sock.settimeout(REPLY_TIMEOUT_SECONDS)
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return
    except socket.timeout:
        raise common.InteropFailure(f"{what}: connection still open after {REPLY_TIMEOUT_SECONDS:.0f} s")
    check(data == b"", f"{what}: expected the connection closed, got {len(data)} bytes {data[:32]!r}")


def send(address, data, shutdown_write=False):
    sock = wire.connect(address)
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the broker may close as soon as it has seen enough
    if shutdown_write:
        sock.shutdown(socket.SHUT_WR)
    return sock


def still_serving(context):
    """Every broker answers ApiVersions v0 on a fresh socket, and kcat -L lists every broker."""
    for index, address in enumerate(common.bootstrap_addresses()):
        correlation_id = 7000 + index
        with wire.connect(address) as sock:
            sock.sendall(wire.api_versions_request(0, correlation_id))
            sock.settimeout(REPLY_TIMEOUT_SECONDS)
            payload = wire.read_frame(sock)
        check(payload is not None, f"after {context}: {address} closed a well-formed ApiVersions v0")
        got, error_code, keys = wire.parse_api_versions_response(payload)
        check(got == correlation_id and error_code == 0 and wire.API_METADATA in keys and wire.API_PRODUCE in keys,
              f"after {context}: {address} answered ApiVersions v0 with correlation {got}, error {error_code}, keys {sorted(keys)}")
    listing = subprocess.run(["kcat", "-L", "-b", common.BOOTSTRAP, "-m", "30"], capture_output=True, text=True, timeout=120)
    check(listing.returncode == 0, f"after {context}: kcat -L exited {listing.returncode}: {listing.stderr[-500:]}")
    check(f" {common.BROKER_COUNT} brokers:" in listing.stdout,
          f"after {context}: kcat -L does not list {common.BROKER_COUNT} brokers:\n{listing.stdout[:800]}")


def produce_partition_errors(payload, version):
    correlation_id, partitions = wire.parse_produce_response(payload, version)
    return partitions


def main():
    target = common.bootstrap_addresses()[0]
    pids = common.node_pids() if common.CLUSTER_DIR else {}
    resident_before = {node: common.resident_kilobytes(pid) for node, pid in pids.items()}
    still_serving("nothing (baseline)")

    # (a) Negative size: the frame cannot be read at all.
    sock = send(target, struct.pack(">i", -5) + b"\x00" * 16)
    expect_closed(sock, "negative frame size")
    sock.close()
    still_serving("a negative frame size")
    log("(a) negative size: connection closed, broker still serving")

    # (b) A size just under 2 GiB with a few bytes behind it: refused before allocating.
    sock = send(target, struct.pack(">i", 0x7FFFFFFF) + wire.request_header(wire.API_METADATA, 4, 1) + b"\x00" * 64)
    expect_closed(sock, "2 GB frame size")
    sock.close()
    still_serving("a 2 GB frame size")
    for node, pid in pids.items():
        grown = common.resident_kilobytes(pid) - resident_before[node]
        check(grown < 512 * 1024, f"node {node} grew by {grown} kB after a 2 GB frame size")
    log("(b) 2 GB size: connection closed, no node grew by it, broker still serving")

    # (c) Unknown API key, well-formed header.
    sock = send(target, wire.request(9999, 0, 303, b"", flexible=False))
    kind, _ = outcome(sock, 303)
    sock.close()
    still_serving("an unknown API key")
    log(f"(c) unknown API key: {kind}, broker still serving")

    # (d) Metadata at a version no client may use (above the advertised 12).
    sock = send(target, wire.request(wire.API_METADATA, 99, 404, b"\x00", flexible=True))
    kind, _ = outcome(sock, 404)
    sock.close()
    still_serving("an unsupported Metadata version")
    log(f"(d) Metadata v99: {kind}, broker still serving")

    # (e) A complete frame whose Produce body stops in the middle of the topic array.
    full = wire.produce_request(9, 505, "truncated-topic", 0, wire.record_batch([b"a", b"b"]))
    payload = full[4:]
    cut = payload[:len(payload) - 40]
    sock = send(target, wire.frame(cut))
    kind, _ = outcome(sock, 505)
    sock.close()
    still_serving("a truncated body")
    log(f"(e) truncated body: {kind}, broker still serving")

    # (e') The size promises more than is sent before the client ends its side of the stream.
    sock = send(target, full[:len(full) - 30], shutdown_write=True)
    expect_closed(sock, "a frame cut short by the end of the stream")
    sock.close()
    still_serving("a frame cut short")
    log("(e') frame cut short: connection closed, broker still serving")

    # (f) Produce v9 to the partition's leader: bad CRC -> CORRUPT_MESSAGE; intact CRC -> accepted.
    topic = common.unique_topic("malformed-crc")
    found = common.create_topic(topic, 1, 3)
    brokers = common.admin_client().list_topics(topic=topic, timeout=30).brokers
    leader = found.partitions[0].leader
    leader_address = f"{brokers[leader].host}:{brokers[leader].port}"
    values = [b"crc-%d" % i for i in range(3)]
    with wire.connect(leader_address) as sock:
        sock.sendall(wire.produce_request(9, 606, topic, 0, wire.record_batch(values, corrupt_crc=True)))
        kind, payload = outcome(sock, 606)
        check(kind == "response", "a Produce with a bad CRC closed the connection instead of answering CORRUPT_MESSAGE")
        partitions = produce_partition_errors(payload, 9)
        check([(t, p, e) for t, p, e, _ in partitions] == [(topic, 0, CORRUPT_MESSAGE)],
              f"Produce with a bad CRC answered {partitions}, expected CORRUPT_MESSAGE (2) for {topic}-0")
        # Same connection: a broker that answered an error keeps serving it.
        sock.sendall(wire.produce_request(9, 607, topic, 0, wire.record_batch(values)))
        kind, payload = outcome(sock, 607)
        check(kind == "response", "the intact Produce after a bad CRC got no response")
        partitions = produce_partition_errors(payload, 9)
        check([(t, p, e, o) for t, p, e, o in partitions] == [(topic, 0, 0, 0)],
              f"intact Produce answered {partitions}, expected no error at base offset 0 "
              f"(the corrupt batch must not have been appended)")
    still_serving("a bad CRC")
    log(f"(f) Produce v9 with a bad CRC to leader {leader}: CORRUPT_MESSAGE; intact batch then at offset 0")

    # (g) ApiVersions above the supported maximum: v0-format reply, UNSUPPORTED_VERSION, key 18 listed.
    with wire.connect(target) as sock:
        sock.sendall(wire.request(wire.API_API_VERSIONS, 127, 808,
                                  wire.string("x", True) + wire.string("1", True) + wire.tags(True), flexible=True))
        kind, payload = outcome(sock, 808)
        check(kind == "response", "ApiVersions v127 closed the connection; clients expect a v0 reply with error 35")
        _, error_code, keys = wire.parse_api_versions_response(payload)
        check(error_code == UNSUPPORTED_VERSION and wire.API_API_VERSIONS in keys,
              f"ApiVersions v127 answered error {error_code} with keys {sorted(keys)}, expected 35 and key 18")
    still_serving("a too-new ApiVersions")
    log("(g) ApiVersions v127: v0 reply with UNSUPPORTED_VERSION, broker still serving")


if __name__ == "__main__":
    common.run_test(main)
