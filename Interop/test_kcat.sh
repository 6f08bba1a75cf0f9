#!/usr/bin/env bash
# kcat (librdkafka 2.0.x) against the cluster: -L lists every broker and the topics; -P of N lines
# then -C -e -o beginning reads back exactly those lines, in order on a one-partition topic and as
# the same multiset on a three-partition topic; and compressed with each codec (-z), checking the
# codec of the batches the broker stores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bootstrap=${TERN_BOOTSTRAP:?TERN_BOOTSTRAP is not set (Interop/run sets it)}
brokers=${TERN_BROKER_COUNT:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
suffix="$(date +%s)-$RANDOM"
single="kcat-single-$suffix"
multi="kcat-multi-$suffix"
lines=2000

fail() { echo "FAIL test_kcat.sh: $*" >&2; exit 1; }
# Metadata queries and produce use librdkafka's own retries; these bound each call.
kcat_common=(-b "$bootstrap" -X socket.timeout.ms=30000 -X topic.message.timeout.ms=120000)

python3 "$here/create-topic.py" "$single" 1 3
python3 "$here/create-topic.py" "$multi" 3 3

# -L: every broker, both topics with their partition counts, each partition led by a listed broker
# with three replicas.
kcat -L -J "${kcat_common[@]}" > "$work/metadata.json" || fail "kcat -L exited $?"
python3 - "$work/metadata.json" "$brokers" "$single" "$multi" <<'PY' || fail "kcat -L metadata is wrong (above)"
import json, sys
metadata = json.load(open(sys.argv[1]))
expected_brokers, single, multi = int(sys.argv[2]), sys.argv[3], sys.argv[4]
broker_ids = sorted(b["id"] for b in metadata["brokers"])
problems = []
if len(broker_ids) != expected_brokers:
    problems.append(f"{len(broker_ids)} brokers listed, expected {expected_brokers}: {metadata['brokers']}")
if metadata.get("controllerid") not in broker_ids:
    problems.append(f"controller id {metadata.get('controllerid')} is not a listed broker {broker_ids}")
topics = {t["topic"]: t for t in metadata["topics"]}
for name, partitions in ((single, 1), (multi, 3)):
    topic = topics.get(name)
    if topic is None:
        problems.append(f"topic {name} not listed: {sorted(topics)}")
        continue
    if topic.get("error"):
        problems.append(f"topic {name} has error {topic['error']}")
    if sorted(p["partition"] for p in topic["partitions"]) != list(range(partitions)):
        problems.append(f"topic {name} partitions {[p['partition'] for p in topic['partitions']]}, expected {partitions}")
    for p in topic["partitions"]:
        if p["leader"] not in broker_ids:
            problems.append(f"{name}-{p['partition']} leader {p['leader']} is not a broker")
        if len(p["replicas"]) != 3:
            problems.append(f"{name}-{p['partition']} has replicas {p['replicas']}, expected 3")
for problem in problems:
    print("  " + problem, file=sys.stderr)
print(f"kcat -L: brokers {broker_ids}, controller {metadata.get('controllerid')}")
sys.exit(1 if problems else 0)
PY

# -P then -C, one partition: exactly the lines, in order.
seq -f "line-%g-$suffix" 1 "$lines" > "$work/single.in"
kcat -P "${kcat_common[@]}" -t "$single" -X acks=all < "$work/single.in" || fail "kcat -P exited $?"
timeout 120 kcat -C "${kcat_common[@]}" -t "$single" -o beginning -e -q > "$work/single.out" \
    || fail "kcat -C on $single exited $?"
if ! cmp -s "$work/single.in" "$work/single.out"; then
    echo "sent $(wc -l < "$work/single.in") lines, read $(wc -l < "$work/single.out"); first differences:" >&2
    diff "$work/single.in" "$work/single.out" | head -20 >&2 || true
    fail "kcat round trip on one partition did not return exactly the lines in order"
fi
echo "kcat: $lines lines round-tripped in order through $single"

# -P with keys (spread over partitions by key hash), then -C of every partition: the same multiset.
for i in $(seq 1 "$lines"); do echo "key-$i:value-$i-$suffix"; done > "$work/multi.in"
kcat -P "${kcat_common[@]}" -t "$multi" -K : -X acks=all < "$work/multi.in" || fail "kcat -P exited $?"
timeout 120 kcat -C "${kcat_common[@]}" -t "$multi" -o beginning -e -q -f '%p %k:%s\n' > "$work/multi.raw" \
    || fail "kcat -C on $multi exited $?"
cut -d' ' -f2- "$work/multi.raw" | sort > "$work/multi.out"
sort "$work/multi.in" > "$work/multi.expected"
if ! cmp -s "$work/multi.expected" "$work/multi.out"; then
    echo "sent $(wc -l < "$work/multi.expected") records, read $(wc -l < "$work/multi.out"); differences:" >&2
    diff "$work/multi.expected" "$work/multi.out" | head -20 >&2 || true
    fail "kcat round trip on three partitions did not return the same records"
fi
used=$(cut -d' ' -f1 "$work/multi.raw" | sort -u | wc -l)
(( used == 3 )) || fail "$lines keyed records landed in $used of 3 partitions"
echo "kcat: $lines keyed records round-tripped through $multi (all 3 partitions used)"

# Compressed batches: the broker stores them as sent (checking header and CRC, not decompressing)
# and serves them back; kcat decompresses. Every codec librdkafka offers, one topic each. A round
# trip alone proves nothing about compression (librdkafka falls back to plain batches when it
# thinks the broker lacks a codec), so each topic's stored batches are read back with a raw Fetch
# and must carry the codec asked for.
for codec in gzip snappy lz4 zstd; do
    topic="kcat-$codec-$suffix"
    python3 "$here/create-topic.py" "$topic" 1 3
    seq -f "$codec-%g-$suffix" 1 "$lines" > "$work/$codec.in"
    kcat -P "${kcat_common[@]}" -t "$topic" -z "$codec" -X acks=all -X linger.ms=50 < "$work/$codec.in" \
        || fail "kcat -P -z $codec exited $?"
    timeout 120 kcat -C "${kcat_common[@]}" -t "$topic" -o beginning -e -q > "$work/$codec.out" \
        || fail "kcat -C on $topic exited $?"
    cmp -s "$work/$codec.in" "$work/$codec.out" \
        || fail "kcat -z $codec round trip: sent $(wc -l < "$work/$codec.in") lines, read $(wc -l < "$work/$codec.out")"
    stored=$codec
    # EXPECTED UNCOMPRESSED: librdkafka enables lz4 only when the broker advertises FindCoordinator,
    # which Tern does not serve yet ("Broker does not support compression type lz4: not compressing
    # batch"), so kcat -z lz4 sends plain batches. Once FindCoordinator is served this check fails:
    # then expect lz4 here.
    if [[ $codec == lz4 ]]; then stored=none; fi
    python3 "$here/stored_batches.py" "$topic" 1 "$stored" || fail "kcat -z $codec: the stored batches are not $stored (above)"
done
echo "kcat: $lines lines round-tripped through each of gzip, snappy, lz4 and zstd; stored gzip, snappy, none (lz4: expected uncompressed) and zstd batches"
echo "ok test_kcat.sh"
