"""Shared pieces of the interop tests: where the cluster is, topic set-up through confluent-kafka's
admin client, and a failure type that names what went wrong.

Interop/run sets the environment: TERN_BOOTSTRAP (host:port,host:port,...) and TERN_CLUSTER_DIR
(the running copy of cluster-configs/three-node, with run/node-N.pid and logs/node-N.log).
"""

import os
import random
import sys
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ.get("TERN_BOOTSTRAP", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094")
CLUSTER_DIR = os.environ.get("TERN_CLUSTER_DIR", "")
BROKER_COUNT = int(os.environ.get("TERN_BROKER_COUNT", "3"))

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


def create_topic(topic, partitions, replication_factor=3):
    """Creates a topic with confluent-kafka's AdminClient and waits until every partition has a
    leader in metadata."""
    client = admin_client()
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
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
