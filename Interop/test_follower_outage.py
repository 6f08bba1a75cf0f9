#!/usr/bin/env python3
"""How long acks=all writes stop when a follower dies.

One partition, replication factor 3, min.insync.replicas=2, and confluent-kafka's idempotent
acks=all producer writing continuously. Once all three replicas are in the ISR, kill -9 a follower
(not the leader, and not the active controller, whose failover would add to the wait). Two
replicas remain, enough for min.insync.replicas, so writes must resume once the controller has
fenced the dead broker (broker.session.timeout.ms) and the leader stops waiting for it; the
leader must not wait for the dead replica to fall out of the ISR by lag (replica.lag.time.max.ms).

The outage is the longest gap between two consecutive acknowledgements around the kill. Interop/run
sets replica.lag.time.max.ms to 60 s against a 9 s session timeout, and the test fails if the
outage reaches half the lag time: far above the session timeout plus the time to fence and shrink
the ISR on a loaded machine, far below the lag time. The measured outage is printed either way.
Every acknowledged record must then be stored exactly once, in order. The killed node is started
again at the end (pass or fail) and the test waits until it is back in the ISR.

(Issue 10: acknowledgements resumed only replica.lag.time.max.ms after the kill: the leader kept
waiting for a replica that was fenced and out of the ISR because it had caught up recently.)
"""

import os
import re
import time

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

import interop_common as common
import stored_batches
from interop_common import check, log

WARM_UP_ACKNOWLEDGEMENTS = 500
RECORDS_PER_SECOND = 200
STEADY_SECONDS_AFTER_RESUME = 5.0
# At 200 records a second, a second without an acknowledgement is an outage, not a hiccup.
ACKNOWLEDGEMENT_PAUSE_SECONDS = 1.0


def cluster_setting(key):
    """A setting of node 1's properties, in the running copy of the cluster."""
    with open(os.path.join(common.CLUSTER_DIR, "node-1.properties")) as file:
        match = re.search(rf"(?m)^{re.escape(key)}=(\d+)$", file.read())
    check(match, f"node-1.properties does not set {key}")
    return int(match.group(1))


def value_of(sequence):
    return b"outage-%08d" % sequence


def wait_for_full_isr(addresses, topic):
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while True:
        view = common.BrokerView(addresses[min(addresses)], [topic])
        partition = view.partition(topic, 0)
        if partition is not None and partition[1] >= 0 and sorted(partition[3]) == sorted(partition[2]) \
                and len(partition[2]) == 3:
            return view, partition
        check(time.monotonic() < deadline, f"{topic}-0 never had all three replicas in its ISR: {partition}")
        time.sleep(0.5)


def longest_gap(times, start):
    """(gap in seconds, from, to) between consecutive times at or after `start`."""
    window = [t for t in times if t >= start]
    gaps = [(b - a, a, b) for a, b in zip(window, window[1:])]
    return max(gaps) if gaps else (0.0, start, start)


def measure(topic, victim, killed):
    """Produces throughout the kill of `victim` (appended to `killed` once dead); returns
    (acknowledged sequences, their ack times, kill time) once acknowledgements stopped and then
    flowed again steadily for a while, or when the lag time has long passed."""
    lag_seconds = cluster_setting("replica.lag.time.max.ms") / 1000
    acknowledged, acknowledged_at, failures, fatal = [], [], [], []
    producer = Producer({
        "bootstrap.servers": common.BOOTSTRAP, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
        # Nothing may time out during an outage as long as the lag time: the test measures it.
        "message.timeout.ms": int((lag_seconds + 120) * 1000), "request.timeout.ms": int((lag_seconds + 60) * 1000),
        "error_cb": lambda error: fatal.append(error) if error.fatal() else None,
    })

    def on_delivery(error, message):
        if error is None:
            acknowledged.append(int(message.value()[7:]))
            acknowledged_at.append(time.monotonic())
        else:
            failures.append(str(error))

    sequence = 0
    kill_time = None
    interval = 1.0 / RECORDS_PER_SECOND
    next_send = time.monotonic()
    warm_up_deadline = time.monotonic() + 120
    while True:
        now = time.monotonic()
        if now >= next_send:
            try:
                producer.produce(topic, value=value_of(sequence), partition=0, on_delivery=on_delivery)
                sequence += 1
            except BufferError:
                pass  # the producer's queue is full during the outage; send later
            next_send += interval
        producer.poll(min(interval, 0.005))
        if kill_time is None:
            check(now < warm_up_deadline, f"only {len(acknowledged)} acknowledgements before the kill")
            if len(acknowledged) >= WARM_UP_ACKNOWLEDGEMENTS:
                kill_time = time.monotonic()
                common.kill_node(victim)
                killed.append(victim)
            continue
        gap, _, gap_end = longest_gap(acknowledged_at, kill_time - 1.0)
        flowing = acknowledged_at[-1] > now - ACKNOWLEDGEMENT_PAUSE_SECONDS
        if (gap >= ACKNOWLEDGEMENT_PAUSE_SECONDS and flowing and now - gap_end >= STEADY_SECONDS_AFTER_RESUME) \
                or now - kill_time > lag_seconds + 60:
            break
    remaining = producer.flush(lag_seconds + 120)
    check(not fatal, f"the idempotent producer hit a fatal error: {fatal}")
    check(remaining == 0 and not failures, f"{remaining} records undelivered, failures {failures[:3]}")
    return acknowledged, acknowledged_at, kill_time


def main():
    session_seconds = cluster_setting("broker.session.timeout.ms") / 1000
    lag_seconds = cluster_setting("replica.lag.time.max.ms") / 1000
    bound = lag_seconds / 2
    check(bound > 2 * session_seconds, f"replica.lag.time.max.ms {lag_seconds} s is not far enough above "
                                       f"broker.session.timeout.ms {session_seconds} s for this test to tell them apart")
    topic = common.unique_topic("follower-outage")
    client = common.admin_client()
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})],
                         operation_timeout=60, request_timeout=60)[topic].result(timeout=120)
    common.wait_for_topic(client, topic, 1)
    addresses = common.client_addresses()
    view, (_, leader, replicas, isr) = wait_for_full_isr(addresses, topic)
    followers = [node for node in replicas if node != leader]
    victim = next((node for node in followers if node != view.controller), followers[0])
    log(f"{topic}-0: leader {leader}, replicas {replicas}, ISR {isr}, active controller {view.controller}; "
        f"will kill follower {victim}")

    killed = []
    try:
        acknowledged, acknowledged_at, kill_time = measure(topic, victim, killed)
    finally:
        if killed:
            common.restart_node(victim)
    gap, gap_start, gap_end = longest_gap(acknowledged_at, kill_time - 1.0)
    resumed = next((t for t in acknowledged_at if t > kill_time + 0.5), None)
    log(f"OUTAGE: {gap:.1f} s without an acknowledgement (from {gap_start - kill_time:+.1f} s to "
        f"{gap_end - kill_time:+.1f} s around the kill); broker.session.timeout.ms {session_seconds:.0f} s, "
        f"replica.lag.time.max.ms {lag_seconds:.0f} s, bound {bound:.0f} s")
    check(resumed is not None, "no acknowledgement after the kill")

    batches = stored_batches.stored_batches(topic, 0)
    stored = [int(value[7:]) for batch in batches for _, _, value in batch.records]
    missing = sorted(set(acknowledged) - set(stored))
    check(not missing, f"{len(missing)} acknowledged records are not stored, first {missing[:5]}")
    check(len(stored) == len(set(stored)) and stored == sorted(stored),
          f"the stored records repeat or are out of order ({len(stored)} stored, {len(set(stored))} distinct)")
    log(f"all {len(acknowledged)} acknowledged records stored once, in order")

    common.wait_until_live(victim, addresses)
    deadline = time.monotonic() + common.METADATA_WAIT_SECONDS
    while victim not in common.BrokerView(addresses[leader], [topic]).partition(topic, 0)[3]:
        check(time.monotonic() < deadline, f"node {victim} never rejoined the ISR of {topic}-0")
        time.sleep(0.5)
    log(f"node {victim} is back in the ISR")

    check(gap < bound, f"acks=all writes stopped for {gap:.1f} s after a follower died: the leader waited about "
                       f"replica.lag.time.max.ms ({lag_seconds:.0f} s) for a dead replica instead of about "
                       f"broker.session.timeout.ms ({session_seconds:.0f} s); the bound is {bound:.0f} s")


if __name__ == "__main__":
    common.run_test(main)
