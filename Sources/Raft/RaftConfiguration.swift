import TernCore

/// Settings of one member of the controller quorum. Voters are static, as in KRaft's
/// `controller.quorum.voters`: membership changes are not implemented.
public struct RaftConfiguration: Sendable, Equatable {
    public var nodeID: NodeID
    /// Every voter of the quorum, this node included. Kept sorted so that every loop over them
    /// (broadcasts, vote counting) runs in the same order in every process.
    public private(set) var voters: [NodeID]

    /// `controller.quorum.election.timeout.ms`: a follower that hears nothing from a leader for a
    /// random time in [electionTimeout, 2 × electionTimeout) starts an election. It is also the
    /// check-quorum period of a leader and the lease during which followers ignore vote requests.
    public var electionTimeout: Duration = .milliseconds(1_000)
    /// How often a leader sends heartbeats. Well below the election timeout, so that a few lost
    /// heartbeats do not cost an election.
    public var heartbeatInterval: Duration = .milliseconds(100)
    /// Ask for pre-votes before a real election (recommended: stops term inflation).
    public var preVote = true
    /// A leader steps down when it has not heard from a quorum within an election timeout, and
    /// followers ignore vote requests while they hear from a leader (recommended).
    public var checkQuorum = true

    /// At most this many entries, and about this many payload bytes, per AppendEntries (an entry
    /// larger than the byte budget still goes alone, so replication always makes progress).
    public var maximumEntriesPerAppend = 64
    public var maximumBytesPerAppend = 1 << 20
    /// AppendEntries sent to a follower and not yet acknowledged; optimistic pipelining stops here.
    public var maximumInflightAppends = 64
    /// Largest payload a proposal may carry.
    public var maximumPayloadBytes = 1 << 20
    /// Entries a leader lets wait for commitment before refusing proposals (backpressure).
    public var maximumUncommittedEntries = 4_096
    /// Messages waiting to be handed out in a `RaftReady`. Past it new messages are dropped and
    /// counted: Raft tolerates lost messages, and heartbeats repair what is lost.
    public var maximumPendingMessages = 4_096
    /// Committed entries handed to the application per `RaftReady`.
    public var maximumCommittedEntriesPerReady = 256
    /// The log is never compacted (snapshots are deferred), so it is capped here: a leader refuses
    /// proposals once the log holds this many entries. Memory and disk are bounded by about
    /// maximumLogEntries × (maximumPayloadBytes + 80 bytes of batch framing).
    public var maximumLogEntries = 1 << 20

    public init(nodeID: NodeID, voters: [NodeID]) {
        self.nodeID = nodeID
        self.voters = voters.sorted()
    }

    /// This node's fellow voters, sorted.
    public var peers: [NodeID] { voters.filter { $0 != nodeID } }

    /// Votes (or acknowledgements) that make a majority of the voters.
    public var quorumSize: Int { voters.count / 2 + 1 }

    /// Checks the settings; a bad configuration is a programming error of the caller, who
    /// validates user input (`controller.quorum.voters`) before building this.
    public func validated() -> RaftConfiguration {
        precondition(!voters.isEmpty, "a quorum needs at least one voter")
        precondition(Set(voters).count == voters.count, "voters must be distinct: \(voters)")
        precondition(voters.contains(nodeID), "node \(nodeID) is not one of the voters \(voters); observers are not supported")
        precondition(voters.allSatisfy { $0.rawValue >= 0 }, "node ids are non-negative")
        precondition(heartbeatInterval > .zero && electionTimeout > heartbeatInterval,
                     "the election timeout must be longer than the heartbeat interval")
        precondition(maximumEntriesPerAppend > 0 && maximumEntriesPerAppend <= RaftMessageCodec.maximumEntriesPerMessage,
                     "maximumEntriesPerAppend must be in 1...\(RaftMessageCodec.maximumEntriesPerMessage)")
        precondition(maximumBytesPerAppend > 0 && maximumPayloadBytes >= 0, "byte limits must be positive")
        precondition(maximumPayloadBytes <= RaftMessageCodec.maximumPayloadBytes,
                     "maximumPayloadBytes must not exceed the codec's \(RaftMessageCodec.maximumPayloadBytes)")
        precondition(maximumBytesPerAppend <= RaftMessageCodec.maximumEntryBytesPerMessage,
                     "maximumBytesPerAppend must not exceed the codec's \(RaftMessageCodec.maximumEntryBytesPerMessage)")
        precondition(maximumInflightAppends > 0 && maximumUncommittedEntries > 0 && maximumPendingMessages > 0
                     && maximumCommittedEntriesPerReady > 0 && maximumLogEntries > 0, "queue bounds must be positive")
        return self
    }
}
