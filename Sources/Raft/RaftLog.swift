import TernCore

/// The in-memory Raft log of one node, with the bookkeeping that ties it to storage and to the
/// application:
///
///     1 ............ appliedIndex ...... commitIndex ....... durableIndex ... lastIndex
///                    handed to the app   known committed     held by storage  in memory
///
/// (commitIndex may also lie beyond durableIndex on a follower: an entry committed by a quorum
/// that this node has not synced yet is still committed.) `unstableFrom` is the first index not
/// yet handed to storage in a `RaftReady`; a truncation below it moves it down, so the next
/// Ready tells storage to cut there.
///
/// Every entry stays in memory: snapshots and compaction are deferred, so memory, disk and
/// restart time grow with the number of entries ever written (bounded by `maximumLogEntries`).
struct RaftLog {
    private(set) var entries: [RaftLogEntry]
    private(set) var commitIndex: LogIndex = .zero
    /// Entries up to here were handed to the application (and acknowledged with `advance`).
    private(set) var appliedIndex: LogIndex = .zero
    private(set) var unstableFrom: LogIndex
    /// Entries up to here are on stable storage exactly as they are in memory.
    private(set) var durableIndex: LogIndex

    /// A log restored from storage; its entries count as durable (the caller makes them so before
    /// anything the core says leaves the node).
    init(restoring entries: [RaftLogEntry]) {
        for (position, entry) in entries.enumerated() {
            precondition(entry.index == LogIndex(Int64(position) + 1), "restored entries must start at 1 and be contiguous")
            precondition(position == 0 || entry.term >= entries[position - 1].term, "terms never go down along a log")
        }
        self.entries = entries
        unstableFrom = LogIndex(Int64(entries.count) + 1)
        durableIndex = LogIndex(Int64(entries.count))
    }

    var lastIndex: LogIndex { LogIndex(Int64(entries.count)) }
    var lastTerm: Term { entries.last?.term ?? .zero }
    var count: Int { entries.count }

    /// The term of the entry at `index`: 0 for index 0, nil past the end.
    func term(at index: LogIndex) -> Term? {
        guard index > .zero else { return index == .zero ? .zero : nil }
        guard index <= lastIndex else { return nil }
        return entries[Int(index.rawValue) - 1].term
    }

    func entry(at index: LogIndex) -> RaftLogEntry? {
        guard index > .zero, index <= lastIndex else { return nil }
        return entries[Int(index.rawValue) - 1]
    }

    func matchesTerm(at index: LogIndex, _ term: Term) -> Bool {
        self.term(at: index) == term
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours if its last term is
    /// higher, or equal with an index at least as large.
    func isUpToDate(lastIndex candidateIndex: LogIndex, lastTerm candidateTerm: Term) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Entries from `start` on, at most `maximumCount` of them and about `maximumBytes` of
    /// payload (the first one always, however large).
    func entries(from start: LogIndex, maximumCount: Int, maximumBytes: Int) -> [RaftLogEntry] {
        precondition(start > .zero, "entries start at index 1")
        guard start <= lastIndex else { return [] }
        let first = Int(start.rawValue) - 1
        var end = first
        var bytes = 0
        while end < entries.count, end - first < maximumCount {
            let size = entries[end].payload.count
            if end > first && bytes + size > maximumBytes { break }
            bytes += size
            end += 1
        }
        return Array(entries[first..<end])
    }

    /// The largest index at or below `index` whose term is at most `term`, with that term: where
    /// our log can possibly agree with a log whose entry at `index` has term `term` (terms only
    /// grow along a log, so every entry above it has a larger term than the other log there).
    func lastIndex(atOrBelow index: LogIndex, withTermAtMost term: Term) -> (index: LogIndex, term: Term) {
        var candidate = min(index, lastIndex)
        while candidate > .zero {
            let candidateTerm = self.term(at: candidate)!
            if candidateTerm <= term { return (candidate, candidateTerm) }
            candidate = candidate.previous
        }
        return (.zero, .zero)
    }

    // MARK: Changes

    /// Appends at the end (a leader's own entries).
    mutating func append(_ entry: RaftLogEntry) {
        precondition(entry.index == lastIndex.next, "append of \(entry.index) after \(lastIndex)")
        precondition(entry.term >= lastTerm, "terms never go down along a log")
        entries.append(entry)
    }

    /// The follower side of AppendEntries: if our log holds (`previousIndex`, `previousTerm`),
    /// makes it hold `newEntries` after it (cutting only from the first entry that disagrees, so a
    /// stale or duplicated append never removes entries a later one added) and returns the last
    /// index the append vouches for. Nil if the consistency check fails.
    mutating func appendFromLeader(_ append: RaftAppendEntries) -> LogIndex? {
        guard matchesTerm(at: append.previousIndex, append.previousTerm) else { return nil }
        let lastNewIndex = append.previousIndex + Int64(append.entries.count)
        guard let conflict = append.entries.first(where: { !matchesTerm(at: $0.index, $0.term) }) else {
            return lastNewIndex
        }
        precondition(conflict.index > commitIndex,
                     "entry \(conflict.index)@\(conflict.term) conflicts with committed entry \(commitIndex)")
        truncate(from: conflict.index)
        for entry in append.entries where entry.index >= conflict.index { self.append(entry) }
        return lastNewIndex
    }

    /// Removes `index` and everything after it (never a committed entry).
    private mutating func truncate(from index: LogIndex) {
        precondition(index > commitIndex, "truncating committed entries (\(index) <= \(commitIndex))")
        guard index <= lastIndex else { return }
        entries.removeSubrange((Int(index.rawValue) - 1)...)
        unstableFrom = min(unstableFrom, index)
        durableIndex = min(durableIndex, index.previous)
    }

    mutating func commit(to index: LogIndex) {
        guard index > commitIndex else { return }
        precondition(index <= lastIndex, "commit index \(index) beyond the last entry \(lastIndex)")
        commitIndex = index
    }

    // MARK: Handing out and acknowledging

    /// Entries storage does not have yet, in order.
    var unstableEntries: ArraySlice<RaftLogEntry> {
        entries[(Int(unstableFrom.rawValue) - 1)...]
    }

    mutating func markHandedToStorage() {
        unstableFrom = lastIndex.next
    }

    /// Storage holds the entries handed out up to `index` (some may have been cut since: only
    /// those still below `unstableFrom` are the ones it holds).
    mutating func markDurable(through index: LogIndex) {
        durableIndex = max(durableIndex, min(index, unstableFrom.previous))
    }

    /// Committed entries not yet handed to the application, at most `limit`.
    func committedEntriesToApply(limit: Int) -> ArraySlice<RaftLogEntry> {
        guard commitIndex > appliedIndex, limit > 0 else { return [] }
        let first = Int(appliedIndex.rawValue)
        let end = min(Int(commitIndex.rawValue), first + limit)
        return entries[first..<end]
    }

    mutating func markApplied(through index: LogIndex) {
        precondition(index <= commitIndex, "applying \(index) beyond the commit index \(commitIndex)")
        appliedIndex = max(appliedIndex, index)
    }
}
