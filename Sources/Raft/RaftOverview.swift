// The Raft module: the controller quorum's replicated log (KRaft's `__cluster_metadata`).
//
// Layers
//   RaftCore      the protocol as a value: `step(input, now)`, `tick(now)`, `ready()` / `advance()`.
//                 No IO, no clock, randomness only from the injected DeterministicRandom.
//   RaftReady     the durability order as a type: persist (hard state, entries) → send → apply.
//   RaftNode      the storage shell: executes Readies on a `Disk` through LogStorage's
//                 PartitionLog and an atomically replaced `quorum-state` file; speaks the node
//                 contract (NodeEvent in, NodeEffect out). Still deterministic.
//   RaftMessageCodec  versioned binary messages; decoding untrusted bytes never traps.
//
// Indexing
//   Entries are numbered from 1 (index 0 = "before the log", term 0). On disk entry i is the
//   RecordBatch at offset i - 1, its partitionLeaderEpoch is the entry's term (so terms are capped
//   at Int32.max, `Term.maximum`), its single record's value is the payload. A new leader's
//   empty entry is a control batch with KRaft's LeaderChange key.
//
// Storage layout (per node): <dataDirectory>/__cluster_metadata-0/
//   00000000000000000000.log/.index ...  segments (retention off, never compacted)
//   partition.checkpoint                 LogStorage's own checkpoint
//   quorum-state                         term + vote, 21 bytes with CRC-32C, temp+sync+rename+sync dir
//
// Safety around the disk
//   - A Ready's messages leave only when its hard state and the whole stored log are durable, so
//     no vote, acknowledgement or term is ever seen by a peer before it would survive a crash.
//   - At start the node re-writes the term and vote it read (they may have been in the page cache
//     only) and syncs every directory above its own, and sends nothing before both are durable.
//   - Log and hard state are separate files: if the log holds a term the hard state does not,
//     recovery adopts that term without a vote (nothing depending on it was ever sent).
//   - The commit index is not persisted: a restarted node learns it again from the leader, and
//     hands committed entries to the application again from index 1.
//
// Deferred (and what that implies)
//   - Snapshots and log compaction: every entry stays in memory and on disk and is replayed on
//     restart. The log is capped at `maximumLogEntries` (default 2^20) entries of at most
//     `maximumPayloadBytes` (default 1 MiB) each; a leader refuses proposals beyond that. In
//     practice metadata records are small: 2^20 entries of ~200 bytes is ~300 MB with framing.
//   - Membership changes (voters are static), observers/learners, forwarding proposals from
//     followers, ReadIndex and lease reads, the leader appending to its own disk in parallel with
//     replication (costs one fsync of latency per commit), pipelined Readies.
