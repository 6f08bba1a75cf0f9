"""Shared pieces of the interop tests: where the cluster is, topic set-up through confluent-kafka's
admin client, and a failure type that names what went wrong.

Interop/run sets the environment: TERN_BOOTSTRAP (host:port,host:port,...), TERN_CLUSTER_DIR
(the running copy of cluster-configs/three-node, with node-N.properties, run/node-N.pid and
logs/node-N.log) and TERN_BINARY (the tern that runs the nodes, to start one again).
"""

import os
import random
import signal
import subprocess
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire

BOOTSTRAP = os.environ.get("TERN_BOOTSTRAP", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094")
CLUSTER_DIR = os.environ.get("TERN_CLUSTER_DIR", "")
BROKER_COUNT = int(os.environ.get("TERN_BROKER_COUNT", "3"))
TERN_BINARY = os.environ.get("TERN_BINARY", "")

# Generous: the cluster runs on two shared cores beside the clients. Never a performance assertion.
METADATA_WAIT_SECONDS = 120.0


class InteropFailure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise InteropFailure(message)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def unique_topic(prefix):
    """Topic names never repeat across runs or tests against the same cluster."""
    return f"{prefix}-{int(time.time())}-{random.randrange(1 << 30):x}"


def bootstrap_addresses():
    return BOOTSTRAP.split(",")


def admin_client():
    return AdminClient({"bootstrap.servers": BOOTSTRAP, "socket.timeout.ms": 30000})


def wait_for_topic(client, topic, partitions, deadline_seconds=METADATA_WAIT_SECONDS):
    """Waits until metadata shows `topic` with `partitions` partitions, each with a leader; returns
    the topic's metadata."""
    deadline = time.monotonic() + deadline_seconds
    last = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            metadata = client.list_topics(topic=topic, timeout=10)
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and len(found.partitions) == partitions \
                    and all(p.leader >= 0 for p in found.partitions.values()):
                return found
            last = f"topic {topic}: " + (
                "absent" if found is None else
                f"error {found.error}, partitions {sorted((p.id, p.leader) for p in found.partitions.values())}")
        except KafkaException as error:
            last = f"list_topics failed: {error}"
        time.sleep(0.5)
    raise InteropFailure(f"topic {topic} never had {partitions} led partitions: {last}")


def create_topic(topic, partitions, replication_factor=3, config=None):
    """Creates a topic with confluent-kafka's AdminClient (with topic configs `config`) and waits
    until every partition has a leader in metadata."""
    client = admin_client()
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor,
                                             config=config or {})],
                                   operation_timeout=60, request_timeout=60)
    futures[topic].result(timeout=120)
    found = wait_for_topic(client, topic, partitions)
    log(f"created {topic}: {partitions} partitions, leaders "
        f"{[found.partitions[p].leader for p in sorted(found.partitions)]}")
    return found


def node_pid(node_id):
    """The pid of node N, from the run/node-N.pid file `tern cluster up` writes."""
    check(CLUSTER_DIR, "TERN_CLUSTER_DIR is not set: this test needs the cluster's pid files")
    path = os.path.join(CLUSTER_DIR, "run", f"node-{node_id}.pid")
    with open(path) as file:
        return int(file.read().strip())


def node_pids():
    return {node: node_pid(node) for node in range(1, BROKER_COUNT + 1)}


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of another process lingers as a zombie until reaped; it serves nothing.
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill_node(node_id):
    """kill -9 of node N's process; returns once it no longer runs."""
    pid = node_pid(node_id)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process_alive(pid):
        check(time.monotonic() < deadline, f"node {node_id} (pid {pid}) still runs 30 s after SIGKILL")
        time.sleep(0.05)
    log(f"killed node {node_id} (pid {pid}) with SIGKILL")


def restart_node(node_id):
    """Starts node N again as `tern cluster up` does: a detached `tern broker --config` process,
    its output appended to logs/node-N.log, its pid in run/node-N.pid (so `tern cluster down`
    stops it)."""
    check(TERN_BINARY and CLUSTER_DIR, "TERN_BINARY and TERN_CLUSTER_DIR must be set to start a node")
    properties = os.path.join(CLUSTER_DIR, f"node-{node_id}.properties")
    with open(os.path.join(CLUSTER_DIR, "logs", f"node-{node_id}.log"), "ab") as output:
        process = subprocess.Popen([TERN_BINARY, "broker", "--config", properties], stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(CLUSTER_DIR, "run", f"node-{node_id}.pid"), "w") as file:
        file.write(f"{process.pid}\n")
    log(f"started node {node_id} again (pid {process.pid})")
    return process


class BrokerView:
    """One broker's own answer to Metadata v1, asked over a raw socket (no client's cache in
    between): brokers {node: (host, port)} (Kafka lists only registered, unfenced brokers),
    controller, and topics {name: (error, {partition: (error, leader, replicas, isr)})}."""

    def __init__(self, address, topics=None):
        with wire.connect(address, timeout=10) as sock:
            sock.sendall(wire.metadata_request(1, 1, topics))
            payload = wire.read_frame(sock)
        check(payload is not None, f"{address} closed the connection on a Metadata request")
        _, self.brokers, self.controller, self.topics = wire.parse_metadata_response_v1(payload)
        self.address = address

    def partition(self, topic, index):
        """(error, leader, replicas, isr), or None if this broker does not know it."""
        found = self.topics.get(topic)
        return None if found is None or found[0] != 0 else found[1].get(index)


def client_addresses():
    """{node: host:port} of every broker, from a live broker's metadata (ask before killing one)."""
    for address in bootstrap_addresses():
        try:
            return {node: f"{host}:{port}" for node, (host, port) in BrokerView(address).brokers.items()}
        except (OSError, ValueError, InteropFailure):
            continue
    raise InteropFailure(f"no broker of {BOOTSTRAP} answers Metadata")


def wait_until_live(node_id, addresses, deadline_seconds=METADATA_WAIT_SECONDS):
    """Waits until every broker in `addresses` ({node: host:port}, the returning one included)
    lists node N as a live broker: registered and unfenced."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        views = {}
        for node, address in sorted(addresses.items()):
            try:
                views[node] = sorted(BrokerView(address).brokers)
            except (OSError, ValueError, InteropFailure) as error:
                views[node] = f"no answer ({error})"
        if all(isinstance(brokers, list) and node_id in brokers for brokers in views.values()):
            log(f"node {node_id} is registered and unfenced in every broker's metadata")
            return
        check(time.monotonic() < deadline, f"node {node_id} not live everywhere after {deadline_seconds:.0f} s: "
                                           f"live brokers per node {views}")
        time.sleep(0.5)


def resident_kilobytes(pid):
    """VmRSS of a live process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise InteropFailure(f"no VmRSS for pid {pid}")


def run_test(main):
    """Runs a test's main function; prints the failure and exits 1 on any exception."""
    name = os.path.basename(sys.argv[0])
    try:
        main()
    except Exception as error:  # every failure, including client exceptions, fails the test
        print(f"FAIL {name}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)
