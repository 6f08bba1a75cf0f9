import LogStorage
import NodeKit
import SimWorld
import Simulator
import TernCore

// A toy node for testing the simulation engine without Raft or brokers: it counts ticks into an
// append-only file of checksummed records, syncs, and announces the last *synced* count to its
// peers. Persist, then announce: after any crash it recovers at least what it announced, so the
// announced values of one node never go down across restarts — unless the engine loses synced
// data, which is what `MonotonicAnnouncementChecker` would catch.

struct CounterNodeOptions: Sendable {
    var peers: [NodeID]
    var tickInterval: Duration = .milliseconds(10)
    /// Announce the synced count to every peer every this many ticks.
    var announceEveryTicks = 5
    /// Emit `.halt` when the count reaches this.
    var haltAtCounter: UInt64?
    /// Send this many extra 8-byte messages per tick to `floodDestination` (for bound tests).
    var floodDestination: NodeID?
    var floodMessagesPerTick = 0
}

final class CounterNode: NodeStateMachine {
    enum Phase: Equatable {
        /// Reading the file failed (injected EIO); retried on the next tick.
        case recovering
        /// Recovered; waiting for the file and directory syncs that make the recovered state
        /// durable before announcing anything.
        case preparing
        case running
    }

    static let recordSize = 16

    let nodeID: NodeID
    let tickInterval: Duration
    private let options: CounterNodeOptions
    private let disk: any Disk
    private let directory: String
    private let path: String
    private var file: DiskFile?
    private(set) var phase = Phase.recovering
    private var writePosition: Int64 = 0
    /// Last value written (synced or not).
    private(set) var counter: UInt64 = 0
    /// Last value known durable: the only one ever announced.
    private(set) var durableCounter: UInt64 = 0
    /// What this process found on disk at start.
    private(set) var recoveredCounter: UInt64 = 0
    private var preparationSyncs: [SyncToken] = []
    private var preparationFailed = false
    private var inFlightSync: (token: SyncToken, value: UInt64)?
    /// Highest count heard from each peer, in `options.peers` order.
    private(set) var highestFromPeer: [UInt64]
    private(set) var messagesReceived = 0
    private var ticks = 0

    init(environment: NodeEnvironment, options: CounterNodeOptions) {
        nodeID = environment.nodeID
        tickInterval = options.tickInterval
        self.options = options
        disk = environment.disk
        directory = environment.dataDirectory
        path = joinPath(environment.dataDirectory, "counter")
        highestFromPeer = Array(repeating: 0, count: options.peers.count)
    }

    func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            recover()
        case .tick:
            onTick(effects: &effects)
        case let .message(source, bytes):
            onMessage(from: source, bytes: bytes)
        case let .syncCompleted(completion):
            onSyncCompleted(completion)
        case .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundConnected, .outboundResponse, .outboundClosed:
            return
        }
    }

    private func recover() {
        do {
            try disk.makeDirectory(directory)
            let opened = try disk.open(path, create: true)
            file = opened
            let size = try disk.size(opened)
            let bytes = try disk.read(opened, at: 0, count: Int(size))
            let (value, validLength) = CounterNode.scan(bytes)
            if validLength < bytes.count { try disk.truncate(opened, to: Int64(validLength)) }
            counter = value
            recoveredCounter = value
            writePosition = Int64(validLength)
            // What was read may be unsynced page cache (after a process kill): make it durable,
            // file and directory entries both, before announcing it.
            preparationSyncs = [disk.sync(opened), disk.syncDirectory("/"), disk.syncDirectory(directory)]
            preparationFailed = false
            phase = .preparing
        } catch {
            if let file { disk.close(file) }
            file = nil
            phase = .recovering
        }
    }

    private func onTick(effects: inout [NodeEffect]) {
        ticks += 1
        switch phase {
        case .recovering:
            recover()
        case .preparing:
            break
        case .running:
            appendNextRecord()
            if ticks % options.announceEveryTicks == 0 {
                for peer in options.peers { effects.append(.send(to: peer, bytes: CounterNode.encode(durableCounter))) }
            }
        }
        if let limit = options.haltAtCounter, counter >= limit {
            effects.append(.halt(reason: "counter reached \(counter)"))
        }
        if let destination = options.floodDestination {
            for index in 0..<options.floodMessagesPerTick {
                effects.append(.send(to: destination, bytes: CounterNode.encode(UInt64(index))))
            }
        }
    }

    private func appendNextRecord() {
        guard inFlightSync == nil, let file else { return }
        let next = counter + 1
        do {
            try disk.write(file, at: writePosition, CounterNode.record(next))
        } catch {
            return  // an injected EIO changed nothing; try again next tick
        }
        counter = next
        writePosition += Int64(CounterNode.recordSize)
        inFlightSync = (disk.sync(file), next)
    }

    private func onMessage(from source: NodeID, bytes: [UInt8]) {
        messagesReceived += 1
        guard bytes.count == 8, let position = options.peers.firstIndex(of: source) else { return }
        highestFromPeer[position] = max(highestFromPeer[position], CounterNode.decode(bytes))
    }

    private func onSyncCompleted(_ completion: SyncCompletion) {
        let succeeded: Bool
        if case .success = completion.result { succeeded = true } else { succeeded = false }
        if let position = preparationSyncs.firstIndex(of: completion.token) {
            preparationSyncs.remove(at: position)
            if !succeeded { preparationFailed = true }
            guard preparationSyncs.isEmpty else { return }
            if preparationFailed {
                recoverAfterFailedPreparation()
            } else {
                durableCounter = max(durableCounter, recoveredCounter)
                phase = .running
            }
            return
        }
        guard let inFlight = inFlightSync, inFlight.token == completion.token else { return }
        inFlightSync = nil
        if succeeded { durableCounter = max(durableCounter, inFlight.value) }
    }

    private func recoverAfterFailedPreparation() {
        if let file { disk.close(file) }
        file = nil
        phase = .recovering
    }

    // MARK: Encoding

    static func check(_ value: UInt64) -> UInt64 {
        var mixer = SplitMix64(seed: value ^ 0x5EED_C0DE)
        return mixer.next()
    }

    static func record(_ value: UInt64) -> [UInt8] { encode(value) + encode(check(value)) }

    /// The value of the last valid record before the first invalid one, and the valid length.
    static func scan(_ bytes: [UInt8]) -> (value: UInt64, validLength: Int) {
        var value: UInt64 = 0
        var offset = 0
        while offset + recordSize <= bytes.count {
            let candidate = decode(Array(bytes[offset..<(offset + 8)]))
            guard decode(Array(bytes[(offset + 8)..<(offset + 16)])) == check(candidate), candidate == value + 1 else { break }
            value = candidate
            offset += recordSize
        }
        return (value, offset)
    }

    static func encode(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func decode(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) }
    }
}

/// Each node's announced counts never go down, across every restart.
final class MonotonicAnnouncementChecker: SimulationChecker {
    let name = "monotonic-announcements"
    /// Looked up by node, never walked.
    private(set) var highestAnnounced: [NodeID: UInt64] = [:]
    private(set) var announcements = 0
    private(set) var startsAfterRestart = 0

    func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        if case .start = delivered.event, delivered.incarnation > 1 { startsAfterRestart += 1 }
        for effect in delivered.effects {
            guard case let .send(_, bytes) = effect, bytes.count == 8 else { continue }
            let value = CounterNode.decode(bytes)
            let previous = highestAnnounced[delivered.nodeID] ?? 0
            if value < previous {
                return .violation("n\(delivered.nodeID) announced \(value) after \(previous) (incarnation \(delivered.incarnation))")
            }
            highestAnnounced[delivered.nodeID] = value
            announcements += 1
        }
        return .ok
    }
}

/// Converged once every node heard from every peer a count at least as high as the one that peer
/// had made durable when the liveness phase was first checked.
final class CounterConvergence {
    private var baseline: [UInt64]?

    func isConverged(_ view: SimulationView) -> Bool {
        let nodes = view.nodeIDs.map { view.node($0, as: CounterNode.self) }
        guard nodes.allSatisfy({ $0?.phase == .running }) else { return false }
        let counters = nodes.map { $0!.durableCounter }
        guard let baseline else {
            baseline = counters
            return false
        }
        for (index, id) in view.nodeIDs.enumerated() {
            for (peerIndex, peer) in view.nodeIDs.enumerated() where peer != id {
                guard let position = nodes[index]!.peersOrder.firstIndex(of: peer),
                      nodes[index]!.highestFromPeer[position] >= baseline[peerIndex] else { return false }
            }
        }
        return true
    }
}

extension CounterNode {
    var peersOrder: [NodeID] { options.peers }
}

/// A cluster of counter nodes with ids 1...count.
func counterConfiguration(seed: UInt64, profile: FaultProfile, nodeCount: Int = 3) -> SimulationConfiguration {
    var configuration = SimulationConfiguration.cluster(seed: seed, profile: profile, nodeCount: nodeCount)
    configuration.safetyPhaseDuration = .seconds(3)
    configuration.livenessPhaseDuration = .seconds(3)
    return configuration
}

func counterFactory(
    _ configuration: SimulationConfiguration, _ adjust: @escaping (inout CounterNodeOptions) -> Void = { _ in }
) -> (NodeEnvironment) -> any NodeStateMachine {
    let ids = configuration.nodes.map(\.id)
    return { environment in
        var options = CounterNodeOptions(peers: ids.filter { $0 != environment.nodeID })
        adjust(&options)
        return CounterNode(environment: environment, options: options)
    }
}
