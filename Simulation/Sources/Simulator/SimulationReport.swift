import SimWorld
import TernCore

/// The first thing that went wrong in a run, with what is needed to replay it.
public struct SimulationViolation: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        /// A registered checker reported it.
        case checker(String)
        /// A node emitted `.halt`: it found one of its own invariants broken.
        case halt
        /// The cluster did not converge in the liveness phase, or the step budget ran out.
        case liveness
        /// A node exceeded a bound the simulator enforces (message size).
        case bound

        public var description: String {
            switch self {
            case let .checker(name): return "checker \(name)"
            case .halt: return "halt"
            case .liveness: return "liveness"
            case .bound: return "bound"
            }
        }
    }

    public let kind: Kind
    public let time: Instant
    public let node: NodeID?
    public let message: String
    public let seed: UInt64
    public let profile: FaultProfile

    /// "seed=… profile=…": what a replay needs besides the (unchanged) configuration.
    public var replayHint: String { "seed=\(seed) profile=\(profile)" }

    public var description: String {
        let where_ = node.map { " n\($0)" } ?? ""
        return "[\(kind)] at \(traceTime(time))s\(where_): \(message) (replay: \(replayHint))"
    }
}

/// What a run did. Two runs of the same configuration and node code give equal reports, trace
/// hash included, in any process.
public struct SimulationReport: Sendable, CustomStringConvertible {
    public let seed: UInt64
    public let profile: FaultProfile
    public let nodeCount: Int
    /// Simulated time when the run ended.
    public let simulatedTime: Duration
    /// Events delivered to nodes (start, tick, message, sync completion).
    public let eventsDelivered: Int
    /// Everything the scheduler popped, including network arrivals, disk wake-ups and faults.
    public let schedulerSteps: Int
    public let faultsInjected: FaultCounts
    public let nodeRestarts: Int
    public let network: NetworkStatistics
    /// Reads, writes and syncs failed on purpose during EIO windows.
    public let injectedDiskErrors: Int
    public let traceHash: UInt64
    public let traceRecords: Int
    public let livenessPhaseStart: Instant?
    /// When the convergence condition first held in the liveness phase.
    public let convergedAt: Instant?
    public let violation: SimulationViolation?

    public var passed: Bool { violation == nil }

    public var description: String {
        var lines: [String] = []
        let verdict = violation.map { "FAILED \($0)" } ?? "passed"
        lines.append("simulation seed=\(seed) profile=\(profile) nodes=\(nodeCount): \(verdict)")
        lines.append("  simulated \(simulatedTime), \(eventsDelivered) node events, \(schedulerSteps) scheduler steps")
        lines.append("  faults \(faultsInjected) (total \(faultsInjected.total)), restarts \(nodeRestarts), injected disk errors \(injectedDiskErrors)")
        lines.append("  network \(network)")
        if let livenessPhaseStart {
            let converged = convergedAt.map { "converged at \(traceTime($0))s" } ?? "no convergence recorded"
            lines.append("  liveness phase from \(traceTime(livenessPhaseStart))s, \(converged)")
        }
        lines.append("  trace hash \(hexadecimal(traceHash)) over \(traceRecords) records")
        return lines.joined(separator: "\n")
    }
}
