import TernCore

/// Everything the core wants done, in the order it must be done (etcd's `Ready`):
///
/// 1. Persist `hardState` (if set) and `entries`, and wait until both are durable. `entries`
///    replace the stored log from `entries[0].index` on: storage first cuts every entry at or
///    after that index (a follower's conflicting tail), then appends them.
/// 2. Send `messages`. A granted vote, an acknowledged append or a term in a message is only
///    true once step 1 is durable; a crash before that must not leave a trace of it elsewhere.
/// 3. Apply `committedEntries` (already committed by a quorum; they never change).
/// 4. Call `advance(_:)` with this Ready. Until then the core hands out no other Ready (steps and
///    ticks may continue; their output waits for the next one).
public struct RaftReady: Sendable, Equatable {
    /// Term and vote to store atomically, if they changed.
    public var hardState: RaftHardState?
    public var entries: [RaftLogEntry]
    public var messages: [RaftMessage]
    public var committedEntries: [RaftLogEntry]
    let sequence: UInt64

    /// The index storage must keep entries below (cutting the rest) before appending `entries`.
    public var firstEntryIndex: LogIndex? { entries.first?.index }
    public var needsPersistence: Bool { hardState != nil || !entries.isEmpty }
}

extension RaftCore {
    /// Whether `ready` would hand out anything. `applyLimit` is how many committed entries the
    /// application can take now (its queue's free room).
    public func hasReady(applyLimit: Int = .max) -> Bool {
        guard readyInFlight == nil else { return false }
        return !outbox.isEmpty || hardState != handedHardState || !log.unstableEntries.isEmpty
            || (applyLimit > 0 && log.commitIndex > log.appliedIndex)
    }

    /// Hands out what is to be persisted, sent and applied. One Ready at a time: the caller
    /// follows its order and calls `advance` before asking again.
    public mutating func ready(applyLimit: Int = .max) -> RaftReady {
        precondition(readyInFlight == nil, "a Ready is still in flight: call advance first")
        readyCount += 1
        let current = hardState
        let limit = min(applyLimit, configuration.maximumCommittedEntriesPerReady)
        let ready = RaftReady(hardState: current == handedHardState ? nil : current,
                              entries: Array(log.unstableEntries),
                              messages: outbox,
                              committedEntries: Array(log.committedEntriesToApply(limit: limit)),
                              sequence: readyCount)
        outbox.removeAll(keepingCapacity: true)
        handedHardState = current
        log.markHandedToStorage()
        readyInFlight = readyCount
        return ready
    }

    /// The caller did everything `ready` asked: its entries are durable, its messages sent, its
    /// committed entries applied. A leader now counts its own copy towards commitment.
    public mutating func advance(_ ready: RaftReady) {
        precondition(readyInFlight == ready.sequence, "advance with a Ready that is not the one in flight")
        readyInFlight = nil
        if let last = ready.entries.last { log.markDurable(through: last.index) }
        if let last = ready.committedEntries.last { log.markApplied(through: last.index) }
        if role == .leader && !ready.entries.isEmpty && advanceCommitIndex() {
            broadcastAppend()
        }
    }
}
