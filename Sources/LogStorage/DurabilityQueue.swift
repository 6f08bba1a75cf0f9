import TernCore

/// Orders everything that must be durable before an offset may count as durable: data syncs,
/// segment rolls (the new file's directory entry) and checkpoints. The durable offset only moves
/// through the completed prefix of the queue, so a sync that completes early (the simulator
/// reorders completions) never vouches for data behind an unfinished one.
struct DurabilityQueue {
    struct Step {
        /// Every offset below this is durable once the step and all steps before it are done.
        var target: Offset
        var outstanding: [SyncToken]
        /// A checkpoint generation that must be durable too (after a truncation), if any.
        var checkpointGeneration: UInt64?
    }

    /// Past this many steps new work joins the last step instead: the queue stays bounded and
    /// the durable offset just moves in bigger jumps.
    static let maximumSteps = 64

    private(set) var steps: [Step] = []
    private(set) var durableOffset: Offset
    private var completedCheckpointGeneration: UInt64 = 0

    init(durableOffset: Offset) { self.durableOffset = durableOffset }

    var isEmpty: Bool { steps.isEmpty }

    mutating func enqueue(target: Offset, tokens: [SyncToken], checkpointGeneration: UInt64? = nil) {
        if let last = steps.last { precondition(target >= last.target, "durability targets never go backwards") }
        if steps.count >= Self.maximumSteps {
            steps[steps.count - 1].target = target
            steps[steps.count - 1].outstanding += tokens
            if let generation = checkpointGeneration {
                steps[steps.count - 1].checkpointGeneration = max(generation, steps[steps.count - 1].checkpointGeneration ?? 0)
            }
        } else {
            steps.append(Step(target: target, outstanding: tokens, checkpointGeneration: checkpointGeneration))
        }
        advance()
    }

    /// Returns true when the token belonged to a step.
    mutating func complete(_ token: SyncToken) -> Bool {
        for position in steps.indices {
            if let found = steps[position].outstanding.firstIndex(of: token) {
                steps[position].outstanding.remove(at: found)
                advance()
                return true
            }
        }
        return false
    }

    mutating func checkpointCompleted(generation: UInt64) {
        completedCheckpointGeneration = max(completedCheckpointGeneration, generation)
        advance()
    }

    /// The log was truncated to `offset`: nothing at or above it is durable any more, and pending
    /// steps can vouch for no more than `offset`.
    mutating func truncate(to offset: Offset) {
        durableOffset = min(durableOffset, offset)
        for position in steps.indices { steps[position].target = min(steps[position].target, offset) }
    }

    /// Everything is forgotten (crash of the owner, or the log was replaced).
    mutating func reset(durableOffset: Offset) {
        steps.removeAll()
        self.durableOffset = durableOffset
    }

    private mutating func advance() {
        while let first = steps.first, first.outstanding.isEmpty,
              (first.checkpointGeneration ?? 0) <= completedCheckpointGeneration {
            durableOffset = max(durableOffset, first.target)
            steps.removeFirst()
        }
    }
}
