// `tern simulate --seeds A..B --jobs N`: a sweep split across N forked worker processes. Each
// simulation runs in one thread and shares nothing with another seed's, so workers only report
// results: one record per seed through a pipe to the parent, which merges them.
#if canImport(Glibc)
import Glibc
#endif

/// A forked process running its share of a sweep's seeds, in order.
private struct SweepWorker {
    var processID: pid_t
    /// The read end of the pipe the worker writes its results to.
    var resultsDescriptor: Int32
    /// The seeds handed to it that it has not reported yet, in the order it runs them.
    var pending: [UInt64]
    var received: [UInt8] = []
}

/// Runs `seeds` in `options.jobs` worker processes (worker j takes every jobs-th seed, so each
/// gets a similar mix) and returns every seed's result, calling `onResult` as each arrives.
/// A worker that dies mid-seed (a node trapping on an assertion kills the process; its crash
/// report, on standard error, names the seed and its replay) costs that seed, counted as a
/// failure, and a new worker takes over the seeds it had not reached. With `stopOnFailure` the
/// first failure to arrive ends the sweep: the other workers are killed, their seeds not run (so
/// the failure found is not always the lowest failing seed).
func runSeedsInWorkers(_ seeds: [UInt64], _ options: SimulateOptions, onResult: (SeedResult) -> Void) -> [SeedResult] {
    let jobs = min(options.jobs, seeds.count)
    var workers: [SweepWorker] = (0..<jobs).map { job in
        startWorker(seeds: stride(from: job, to: seeds.count, by: jobs).map { seeds[$0] }, options)
    }
    var results: [SeedResult] = []
    results.reserveCapacity(seeds.count)
    while !workers.isEmpty {
        var descriptors = workers.map { pollfd(fd: $0.resultsDescriptor, events: Int16(POLLIN), revents: 0) }
        guard poll(&descriptors, nfds_t(descriptors.count), -1) >= 0 else {
            if errno == EINTR { continue }
            failOperation("simulate: poll on the workers failed (errno \(errno))")
        }
        var finished: [Int] = []
        for index in workers.indices where descriptors[index].revents != 0 {
            if readResults(&workers[index], into: &results, onResult: onResult) { finished.append(index) }
        }
        for index in finished.reversed() {
            let worker = workers.remove(at: index)
            if let replacement = reap(worker, options, into: &results, onResult: onResult) { workers.append(replacement) }
        }
        if options.stopOnFailure, results.contains(where: { $0.violation != nil }) {
            for worker in workers { stop(worker) }
            workers.removeAll()
        }
    }
    return results
}

/// Ends a worker whose remaining seeds are no longer wanted.
private func stop(_ worker: SweepWorker) {
    kill(worker.processID, SIGKILL)
    close(worker.resultsDescriptor)
    var status: Int32 = 0
    while waitpid(worker.processID, &status, 0) < 0 && errno == EINTR {}
}

private func startWorker(seeds: [UInt64], _ options: SimulateOptions) -> SweepWorker {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { failOperation("simulate: cannot create a pipe for a worker (errno \(errno))") }
    // Whatever this process has buffered must not be written again by the child.
    fflush(nil)
    let processID = fork()
    guard processID >= 0 else { failOperation("simulate: cannot fork a worker (errno \(errno))") }
    if processID == 0 {
        close(ends[0])
        for seed in seeds { writeRecord(runSeed(seed, options), to: ends[1]) }
        close(ends[1])
        _exit(0)
    }
    close(ends[1])
    return SweepWorker(processID: processID, resultsDescriptor: ends[0], pending: seeds)
}

/// Reads what the worker has written and hands on every complete record. True once the pipe is
/// closed (or unreadable): the worker is done or dead.
private func readResults(_ worker: inout SweepWorker, into results: inout [SeedResult], onResult: (SeedResult) -> Void) -> Bool {
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    let count = chunk.withUnsafeMutableBytes { read(worker.resultsDescriptor, $0.baseAddress, $0.count) }
    if count < 0 { return errno != EINTR }
    if count == 0 { return true }
    worker.received.append(contentsOf: chunk[..<count])
    while let (result, length) = parseRecord(worker.received) {
        worker.received.removeFirst(length)
        precondition(worker.pending.first == result.seed, "a worker reported seed \(result.seed) out of turn")
        worker.pending.removeFirst()
        results.append(result)
        onResult(result)
    }
    return false
}

/// Waits for a worker whose pipe closed. If it died before reporting all its seeds, the first
/// unreported one failed (the worker died running it); returns a worker for the rest, if any.
private func reap(_ worker: SweepWorker, _ options: SimulateOptions, into results: inout [SeedResult],
                  onResult: (SeedResult) -> Void) -> SweepWorker? {
    close(worker.resultsDescriptor)
    var status: Int32 = 0
    while waitpid(worker.processID, &status, 0) < 0 && errno == EINTR {}
    guard let seed = worker.pending.first else { return nil }
    // WIFEXITED / WTERMSIG / WEXITSTATUS are C macros, which Swift does not import.
    let termination = status & 0x7F == 0 ? "exited with status \((status >> 8) & 0xFF)" : "was killed by signal \(status & 0x7F)"
    let result = SeedResult(seed: seed, simulatedSeconds: 0,
                            violation: "the worker process running this seed \(termination) (a node trapping on an assertion "
                                + "kills it, and its crash report above then names this seed)")
    results.append(result)
    onResult(result)
    let rest = Array(worker.pending.dropFirst())
    return rest.isEmpty ? nil : startWorker(seeds: rest, options)
}

// MARK: Records

// A record: "SEED SIMULATED_SECONDS_BITS VIOLATION_BYTES\n" then the violation's UTF-8 bytes
// (VIOLATION_BYTES -1: the seed passed). Each record is no longer than its violation's text, so
// the parent buffers at most one partial record per worker.

private func writeRecord(_ result: SeedResult, to descriptor: Int32) {
    let violation = result.violation.map { Array($0.utf8) }
    var bytes = Array("\(result.seed) \(result.simulatedSeconds.bitPattern) \(violation.map { String($0.count) } ?? "-1")\n".utf8)
    bytes.append(contentsOf: violation ?? [])
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { _exit(3) }  // the parent is gone: nobody to report to
        written += count
    }
}

/// The first complete record in `bytes` and its length, or nil if it has not all arrived.
private func parseRecord(_ bytes: [UInt8]) -> (SeedResult, Int)? {
    guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
    let fields = String(decoding: bytes[..<newline], as: UTF8.self).split(separator: " ")
    guard fields.count == 3, let seed = UInt64(fields[0]), let bits = UInt64(fields[1]), let count = Int(fields[2]), count >= -1 else {
        preconditionFailure("a worker wrote a malformed record header")
    }
    let end = newline + 1 + max(count, 0)
    guard bytes.count >= end else { return nil }
    let violation = count < 0 ? nil : String(decoding: bytes[(newline + 1)..<end], as: UTF8.self)
    return (SeedResult(seed: seed, simulatedSeconds: Double(bitPattern: bits), violation: violation), end)
}
