// `tern simulate`: runs the deterministic cluster simulation for one seed or a range of seeds.
#if canImport(Glibc)
import Posix
import Glibc
#endif
import Broker
import Simulator
import TernCore

struct SimulateOptions {
    var seeds: ClosedRange<UInt64> = 1...1
    var isSweep = false
    /// Sweeps run every profile listed; a single run uses the first.
    var profiles = [FaultProfile.all]
    var profile: FaultProfile { profiles[0] }
    /// The data-plane workload (producer, consumer, operator) runs unless `--no-workload`.
    var layout: ClusterLayout = {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        return layout
    }()
    var safetySeconds: Int64 = 60
    var livenessSeconds: Int64 = 30
    /// Replaces the nemesis's weights (`--fault-weights`): kinds not listed are disabled.
    var faultWeights: FaultKindTable<Int>?
    /// Replaces the nemesis's mean time between faults (`--fault-interval-ms`), in milliseconds.
    var faultIntervalMilliseconds: Int64?
    /// Replace how long partitions, pauses and skews last, and how long downed nodes stay down
    /// (`--fault-duration-ms`, `--restart-delay-ms`), in milliseconds.
    var faultDurationMilliseconds: ClosedRange<Int64>?
    var restartDelayMilliseconds: ClosedRange<Int64>?
    /// Replaces the disks' sync latency (`--sync-latency-ms`), in milliseconds.
    var syncLatencyMilliseconds: ClosedRange<Int64>?
    /// Dimensions of the generated world fixed instead of drawn (`--storage`, `--workload`, `--churn`).
    var worldChoices = GeneratedWorld.Choices()
    var tracePath: String?
    var watch: TopicPartition?
    /// A sweep's worker processes (`--jobs`); 1 runs every seed in this process.
    var jobs = 1
    /// A sweep ends at the first failing seed it sees (`--stop-on-failure`), skipping the seeds
    /// and profiles not yet run: the mutation suite only needs to know whether any seed fails.
    var stopOnFailure = false

    /// The arguments that replay `seed` exactly.
    func replayCommand(seed: UInt64) -> String {
        var command = "tern simulate --seed \(seed) --profile \(profile)"
        if layout.combined > 0 {
            command += " --combined \(layout.combined)" + (layout.brokers > 0 ? " --brokers \(layout.brokers)" : "")
        } else {
            command += " --controllers \(layout.controllers) --brokers \(layout.brokers)"
        }
        command += " --safety-seconds \(safetySeconds) --liveness-seconds \(livenessSeconds)"
        if !layout.produceWorkload { command += " --no-workload" }
        if layout.uncleanLeaderElection { command += " --unclean-leader-election" }
        if let faultWeights { command += " --fault-weights \(weightsArgument(faultWeights))" }
        if let interval = faultIntervalMilliseconds { command += " --fault-interval-ms \(interval)" }
        if let duration = faultDurationMilliseconds { command += " --fault-duration-ms \(duration.lowerBound)..\(duration.upperBound)" }
        if let delay = restartDelayMilliseconds { command += " --restart-delay-ms \(delay.lowerBound)..\(delay.upperBound)" }
        if let latency = syncLatencyMilliseconds { command += " --sync-latency-ms \(latency.lowerBound)..\(latency.upperBound)" }
        if layout.durabilityPolicy != .synced { command += " --durability \(durabilityName(layout.durabilityPolicy))" }
        if let storage = worldChoices.storage { command += " --storage \(storage.rawValue)" }
        if let workload = worldChoices.workload { command += " --workload \(workload.rawValue)" }
        if let churn = worldChoices.churn { command += " --churn \(churn.rawValue)" }
        return command
    }
}

func runSimulate(_ arguments: [String]) {
    let options = parseSimulateOptions(arguments)
    guard options.isSweep else { return runSingle(seed: options.seeds.lowerBound, options) }
    var passed = 0
    var failed = 0
    for profile in options.profiles {
        var oneProfile = options
        oneProfile.profiles = [profile]
        let counts = runSweep(oneProfile)
        passed += counts.passed
        failed += counts.failed
        if options.stopOnFailure && failed > 0 { break }
    }
    let stopped = options.stopOnFailure && failed > 0 ? " (stopped at the first failure)" : ""
    print("simulation: \(passed) passed, \(failed) failed" + stopped)
    if failed > 0 { exit(1) }
}

private func simulation(seed: UInt64, _ options: SimulateOptions) -> ClusterSimulation {
    var simulation = ClusterSimulation(seed: seed, profile: options.profile, layout: options.layout,
                                       safetyPhase: .seconds(options.safetySeconds), livenessPhase: .seconds(options.livenessSeconds))
    if let weights = options.faultWeights { simulation.configuration.nemesis.weights = weights }
    if let interval = options.faultIntervalMilliseconds {
        simulation.configuration.nemesis.meanTimeBetweenFaults = .milliseconds(interval)
    }
    if let duration = options.faultDurationMilliseconds {
        simulation.configuration.nemesis.faultDuration = .milliseconds(duration.lowerBound)...(.milliseconds(duration.upperBound))
    }
    if let delay = options.restartDelayMilliseconds {
        simulation.configuration.nemesis.restartDelay = .milliseconds(delay.lowerBound)...(.milliseconds(delay.upperBound))
    }
    if let latency = options.syncLatencyMilliseconds {
        simulation.configuration.disk.syncLatency = .milliseconds(latency.lowerBound)...(.milliseconds(latency.upperBound))
    }
    simulation.worldChoices = options.worldChoices
    return simulation
}

private func runSingle(seed: UInt64, _ options: SimulateOptions) {
    armCrashReport(seed: seed, command: options.replayCommand(seed: seed))
    var traceFile: UnsafeMutablePointer<FILE>?
    if let path = options.tracePath {
        guard let file = fopen(path, "w") else { fail("cannot write the trace to \(path)") }
        traceFile = file
    }
    let sink: ((String) -> Void)? = traceFile.map { file in { line in fputs(line + "\n", file) } }
    let start = monotonicSeconds()
    let outcome = simulation(seed: seed, options).run(traceSink: sink, watch: options.watch)
    let wallSeconds = monotonicSeconds() - start
    if let traceFile { fclose(traceFile) }
    printSummary(outcome, wallSeconds: wallSeconds, options)
    if let violation = outcome.report.violation {
        print("VIOLATION \(violation)")
        print("replay: \(options.replayCommand(seed: seed))")
        exit(1)
    }
}

private func printSummary(_ outcome: ClusterSimulation.Outcome, wallSeconds: Double, _ options: SimulateOptions) {
    let report = outcome.report
    let simulated = report.simulatedTime.seconds
    print("seed \(report.seed)  profile \(report.profile)  nodes \(report.nodeCount)")
    for (label, text) in outcome.world?.summary ?? [] {
        print("  " + label + String(repeating: " ", count: max(1, 16 - label.count)) + text)
    }
    print("  simulated time  \(formatFixed(simulated, places: 3)) s   (wall \(formatFixed(wallSeconds, places: 3)) s, "
        + "\(formatFixed(wallSeconds > 0 ? simulated / wallSeconds : 0, places: 0))x real time)")
    print("  events          \(report.eventsDelivered) delivered, \(report.schedulerSteps) scheduler steps")
    print("  faults          \(report.faultsInjected.total) injected: \(report.faultsInjected)")
    if outcome.churnSteps.taken + outcome.churnSteps.skipped > 0 {
        print("  churn steps     \(outcome.churnSteps.taken) taken, \(outcome.churnSteps.skipped) skipped (no target to fault in time)")
    }
    print("  restarts        \(report.nodeRestarts)")
    print("  network         \(report.network)")
    print("  elections       \(outcome.elections) terms with a leader")
    print("  committed       \(outcome.committedRaftEntries) Raft entries, \(outcome.committedMetadataRecords) metadata records")
    if !outcome.operatorActions.isEmpty {
        let actions = outcome.operatorActions.keys.sorted().map { "\($0)=\(outcome.operatorActions[$0]!)" }
        print("  operator        \(actions.joined(separator: " "))")
    }
    print("  checks          \(outcome.checkersRun.joined(separator: ", ")) after every event and at the end")
    print("  durability      \(outcome.durableAcknowledgementsChecked) acknowledged batches and "
        + "\(outcome.raftMessagesCheckedAgainstDisk) Raft messages checked against the disks as they left")
    if options.layout.produceWorkload {
        print("  produced        \(outcome.producer)")
        print("  consumed        \(outcome.consumedRecords) records "
            + "(\(outcome.checkedConsumerFetches) fetch answers checked against the high watermark)")
        print("  time lookups    \(outcome.timestampLookups.checked) ListOffsets answers by timestamp checked against the "
            + "leader's files (\(outcome.timestampLookups.unchecked) over a range that did not read cleanly or that retention moved)")
        print("  auto-created    \(outcome.automaticallyCreatedTopics) topics created by a Metadata request alone, "
            + "with the controllers' defaults")
        print("  retention       \(outcome.retentionMoves.leaders) log start moves of leaders judged against retention.bytes / "
            + "retention.ms, \(outcome.retentionMoves.followers) of followers against their leaders'")
        let recycled = outcome.recycledTopic
        print("  recycled topic  \(recycled.incarnations) incarnations, \(recycled.checkedAnswers) fetch answers and "
            + "\(recycled.checkedReplicaReads) replica logs checked, \(recycled.checkedAcknowledgements) acknowledgements of the last "
            + "checked, \(recycled.acknowledgedByAnEarlierIncarnation) acknowledged by brokers still on an earlier incarnation, "
            + "\(recycled.writtenIntoALaterIncarnation) delivered late to a later one "
            + "(\(recycled.acknowledgedBatchesOfDeletedIncarnations) batches of deleted incarnations not held to durability)")
    }
    if let window = outcome.writeAvailability {
        let inISR = window.longestWait(failedBrokerInISR: true).map { "\($0)" } ?? "-"
        let others = window.longestWait(failedBrokerInISR: false).map { "\($0)" } ?? "-"
        print("  availability    n\(window.failedBroker) failed at \(window.failedAt): \(window.resumedAfter.count) of "
            + "\(window.judgedPartitions.count) judged partitions wrote again; longest wait \(inISR) where it was in "
            + "the ISR, \(others) elsewhere (bound \(window.bound))")
    }
    if let start = report.livenessPhaseStart, let converged = report.convergedAt {
        print("  converged       \(formatFixed((converged - start).seconds, places: 3)) s into the liveness phase")
    }
    print("  trace hash      \(hexadecimal(report.traceHash))  (\(report.traceRecords) records)")
    print(report.passed ? "  result          PASS" : "  result          FAIL")
}

/// One seed's outcome, as a sweep summarizes it.
struct SeedResult {
    var seed: UInt64
    var simulatedSeconds: Double
    var violation: String?
}

/// Runs one seed of a sweep in this process (its crash report armed).
func runSeed(_ seed: UInt64, _ options: SimulateOptions) -> SeedResult {
    armCrashReport(seed: seed, command: options.replayCommand(seed: seed))
    let outcome = simulation(seed: seed, options).run()
    return SeedResult(seed: seed, simulatedSeconds: outcome.report.simulatedTime.seconds,
                      violation: outcome.report.violation?.description)
}

private func runSweep(_ options: SimulateOptions) -> (passed: Int, failed: Int) {
    let start = monotonicSeconds()
    var simulatedSeconds = 0.0
    var done = 0
    var failures = 0
    func progress(_ result: SeedResult) {
        done += 1
        simulatedSeconds += result.simulatedSeconds
        if result.violation != nil { failures += 1 }
        // A live progress line on a terminal; logs (CI) get the summary lines only.
        guard standardErrorIsTerminal else { return }
        let elapsed = monotonicSeconds() - start
        writeStandardError("\rseeds \(done)/\(options.seeds.count)  failures \(failures)  "
            + "\(formatFixed(simulatedSeconds / max(elapsed, 0.001), places: 0))x real time  \(formatFixed(elapsed, places: 1)) s\u{1B}[K")
    }
    let results: [SeedResult]
    if options.jobs > 1 {
        results = runSeedsInWorkers(Array(options.seeds), options, onResult: progress)
    } else {
        var ran: [SeedResult] = []
        for seed in options.seeds {
            let result = runSeed(seed, options)
            progress(result)
            ran.append(result)
            if options.stopOnFailure && result.violation != nil { break }
        }
        results = ran
    }
    if standardErrorIsTerminal { writeStandardError("\n") }
    let elapsed = monotonicSeconds() - start
    let failed = results.filter { $0.violation != nil }.sorted { $0.seed < $1.seed }
    print("profile \(options.profile): \(formatFixed(simulatedSeconds, places: 0)) simulated seconds in "
        + "\(formatFixed(elapsed, places: 1)) s (\(formatFixed(simulatedSeconds / max(elapsed, 0.001), places: 0))x real time"
        + (options.jobs > 1 ? ", \(options.jobs) processes)" : ")"))
    let skipped = options.seeds.count - results.count
    print("swept seeds \(options.seeds.lowerBound)...\(options.seeds.upperBound), profile \(options.profile): "
        + "\(results.count - failed.count) passed, \(failed.count) failed"
        + (skipped > 0 ? ", \(skipped) not run (--stop-on-failure)" : ""))
    for result in failed {
        print("FAIL seed \(result.seed): \(result.violation!)")
        print("  replay: \(options.replayCommand(seed: result.seed))")
    }
    return (results.count - failed.count, failed.count)
}

// MARK: Crash reports

/// What a signal handler prints when a node traps on an assertion: prepared before the run,
/// because a handler may only call async-signal-safe functions (write).
nonisolated(unsafe) private var crashMessage: [UInt8] = []

private func armCrashReport(seed: UInt64, command: String) {
    crashMessage = Array("\nCRASH seed \(seed): a node trapped on an assertion (a violation)\n  replay: \(command)\n".utf8)
    for signalNumber in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS] {
        signal(signalNumber) { received in
            crashMessage.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
            signal(received, SIG_DFL)
            raise(received)
        }
    }
}

// MARK: Options

private func parseSimulateOptions(_ arguments: [String]) -> SimulateOptions {
    var options = SimulateOptions()
    var givenFlags: Set<String> = []
    var index = 0
    func value() -> String {
        guard index + 1 < arguments.count else { fail("\(arguments[index]) needs a value") }
        index += 1
        return arguments[index]
    }
    func integer(_ text: String, _ flag: String) -> Int {
        guard let number = Int(text), number >= 0 else { fail("\(flag) takes a non-negative integer, not '\(text)'") }
        return number
    }
    while index < arguments.count {
        let flag = arguments[index]
        givenFlags.insert(flag)
        switch flag {
        case "--seed":
            guard let seed = UInt64(value()) else { fail("--seed takes an integer") }
            options.seeds = seed...seed
        case "--seeds":
            options.seeds = parseRange(value(), flag)
            options.isSweep = true
        case "--profile":
            options.profiles = value().split(separator: ",").map { name in
                guard let profile = FaultProfile(rawValue: String(name)) else {
                    fail("unknown profile '\(name)'; one of \(FaultProfile.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return profile
            }
            guard !options.profiles.isEmpty else { fail("--profile needs a profile") }
        case "--controllers": options.layout.controllers = integer(value(), flag)
        case "--brokers": options.layout.brokers = integer(value(), flag)
        case "--combined":
            options.layout.combined = integer(value(), flag)
            options.layout.controllers = 0
        case "--safety-seconds": options.safetySeconds = Int64(integer(value(), flag))
        case "--liveness-seconds": options.livenessSeconds = Int64(integer(value(), flag))
        case "--trace": options.tracePath = value()
        case "--fault-weights": options.faultWeights = parseWeights(value())
        case "--fault-interval-ms":
            let interval = integer(value(), flag)
            guard interval > 0 else { fail("--fault-interval-ms must be positive") }
            options.faultIntervalMilliseconds = Int64(interval)
        case "--fault-duration-ms":
            let range = parseRange(value(), flag, as: Int64.self)
            guard range.lowerBound > 0 else { fail("--fault-duration-ms must be positive") }
            options.faultDurationMilliseconds = range
        case "--restart-delay-ms":
            options.restartDelayMilliseconds = parseRange(value(), flag)
        case "--sync-latency-ms":
            options.syncLatencyMilliseconds = parseRange(value(), flag)
            options.worldChoices.storage = .uniform  // every disk at the latency given
        case "--storage": options.worldChoices.storage = parseChoice(value(), flag)
        case "--workload": options.worldChoices.workload = parseChoice(value(), flag)
        case "--churn": options.worldChoices.churn = parseChoice(value(), flag)
        case "--narrow-world": options.worldChoices = .narrow
        case "--produce": options.layout.produceWorkload = true  // the default; kept for old replay lines
        case "--no-workload": options.layout.produceWorkload = false
        case "--unclean-leader-election": options.layout.uncleanLeaderElection = true
        case "--durability":
            let name = value()
            guard let policy = durabilityPolicies.first(where: { durabilityName($0) == name }) else {
                fail("--durability takes \(durabilityPolicies.map(durabilityName).joined(separator: " or ")), not '\(name)'")
            }
            options.layout.durabilityPolicy = policy
        case "--stop-on-failure": options.stopOnFailure = true
        case "--jobs":
            options.jobs = integer(value(), flag)
            guard options.jobs >= 1 else { fail("--jobs takes a positive number of processes") }
        case "--watch":
            let name = value()
            guard let dash = name.lastIndex(of: "-"), let partition = Int32(name[name.index(after: dash)...]) else {
                fail("--watch takes TOPIC-PARTITION, for example topic-0-1")
            }
            options.watch = TopicPartition(topic: String(name[..<dash]), partition: partition)
        default: fail("unknown option '\(flag)' for simulate")
        }
        index += 1
    }
    if options.layout.combined > 0 {
        guard !givenFlags.contains("--controllers") else {
            fail("--combined N runs the controllers inside N combined nodes; --controllers (dedicated ones) does not mix with it")
        }
        // Combined nodes alone, unless dedicated brokers are asked for beside them.
        if !givenFlags.contains("--brokers") { options.layout.brokers = 0 }
    }
    guard options.layout.controllers + options.layout.combined >= 1 else { fail("a cluster needs at least one controller") }
    guard options.jobs == 1 || options.isSweep else { fail("--jobs splits a sweep (--seeds A..B) across processes") }
    guard !options.stopOnFailure || options.isSweep else { fail("--stop-on-failure ends a sweep (--seeds A..B) early") }
    return options
}

/// One of a world dimension's kinds, by name.
private func parseChoice<Kind: RawRepresentable & CaseIterable>(_ text: String, _ flag: String) -> Kind where Kind.RawValue == String {
    guard let kind = Kind(rawValue: text) else {
        fail("\(flag) takes \(Kind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
    }
    return kind
}

/// "A..B" with 0 <= A <= B.
private func parseRange<Bound: FixedWidthInteger>(_ text: String, _ flag: String, as _: Bound.Type = Bound.self) -> ClosedRange<Bound> {
    let parts = text.split(separator: ".", omittingEmptySubsequences: true)
    guard parts.count == 2, let low = Bound(parts[0]), let high = Bound(parts[1]), 0 <= low, low <= high else {
        fail("\(flag) takes a range A..B, not '\(text)'")
    }
    return low...high
}

/// "power-loss=8,crash=1": the listed kinds with their weights, every other kind 0.
private func parseWeights(_ text: String) -> FaultKindTable<Int> {
    var weights = FaultKindTable(repeating: 0)
    for entry in text.split(separator: ",") {
        let parts = entry.split(separator: "=")
        guard parts.count == 2, let kind = FaultKind.allCases.first(where: { $0.description == parts[0] }),
              let weight = Int(parts[1]), weight >= 0 else {
            fail("--fault-weights takes KIND=N,..., with KIND one of \(FaultKind.allCases.map(\.description).joined(separator: ", ")), not '\(entry)'")
        }
        weights[kind] = weight
    }
    guard weights.total > 0 else { fail("--fault-weights needs a positive weight") }
    return weights
}

private func weightsArgument(_ weights: FaultKindTable<Int>) -> String {
    FaultKind.allCases.filter { weights[$0] > 0 }.map { "\($0)=\(weights[$0])" }.joined(separator: ",")
}

private let durabilityPolicies: [DurabilityPolicy] = [.synced, .pageCache]

/// The `--durability` name of a policy.
private func durabilityName(_ policy: DurabilityPolicy) -> String {
    switch policy {
    case .synced: return "synced"
    case .pageCache: return "page-cache"
    }
}

private let standardErrorIsTerminal = isatty(2) != 0

private func monotonicSeconds() -> Double {
    Double(Clocks.monotonicNanoseconds()) / 1e9
}

private func writeStandardError(_ text: String) {
    var standardError = StandardError()
    standardError.write(text)
}

private func hexadecimal(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
