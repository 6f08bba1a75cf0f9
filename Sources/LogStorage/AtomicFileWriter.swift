import TernCore

/// Replaces a small file atomically and durably: write a temporary file, sync it, rename it over
/// the target, sync the directory. A crash at any point leaves either the old or the new contents,
/// never a mix. Writes are serialised; a write requested while one is in flight starts when it
/// ends, with the contents current at that moment (so the file never goes back in time).
///
/// Driven by sync completions: `handle` returns whether it owned the token and what happened.
public struct AtomicFileWriter: Sendable {
    public enum Phase: Equatable, Sendable {
        case idle
        /// Syncs that must finish before the contents may be written (e.g. an index file whose
        /// entries the new contents vouch for).
        case waitingForPrerequisites(remaining: [SyncToken], contents: [UInt8])
        case syncingFile(token: SyncToken, file: DiskFile)
        case syncingDirectory(token: SyncToken)
    }

    public enum Progress: Equatable, Sendable {
        case notMine
        case inProgress
        /// The write of this generation is durable.
        case completed(generation: UInt64)
    }

    public let path: String
    public private(set) var phase: Phase = .idle
    /// Generation of the write in flight (or of the last one finished).
    public private(set) var currentGeneration: UInt64 = 0
    public private(set) var completedGeneration: UInt64 = 0

    public init(path: String) { self.path = path }

    public var isIdle: Bool { phase == .idle }
    public var temporaryPath: String { path + ".tmp" }

    /// Starts a write; the caller checks `isIdle` first. Returns the generation being written.
    public mutating func start(contents: [UInt8], after prerequisites: [SyncToken], disk: any Disk) throws(DiskError) -> UInt64 {
        precondition(isIdle, "an atomic write of \(path) is already in flight")
        currentGeneration += 1
        if prerequisites.isEmpty {
            try writeTemporary(contents, disk: disk)
        } else {
            phase = .waitingForPrerequisites(remaining: prerequisites, contents: contents)
        }
        return currentGeneration
    }

    private mutating func writeTemporary(_ contents: [UInt8], disk: any Disk) throws(DiskError) {
        let file = try disk.open(temporaryPath, create: true)
        do {
            try disk.truncate(file, to: 0)
            try disk.write(file, at: 0, contents)
        } catch {
            disk.close(file)
            throw error
        }
        phase = .syncingFile(token: disk.sync(file), file: file)
    }

    /// Advances on a completion. A failed sync throws; the caller treats that as fatal for the log.
    public mutating func handle(_ completion: SyncCompletion, disk: any Disk) throws(DiskError) -> Progress {
        switch phase {
        case .idle:
            return .notMine
        case let .waitingForPrerequisites(remaining, contents):
            guard remaining.contains(completion.token) else { return .notMine }
            try completion.result.get()
            let rest = remaining.filter { $0 != completion.token }
            if rest.isEmpty {
                try writeTemporary(contents, disk: disk)
            } else {
                phase = .waitingForPrerequisites(remaining: rest, contents: contents)
            }
            return .inProgress
        case let .syncingFile(token, file):
            guard completion.token == token else { return .notMine }
            disk.close(file)
            try completion.result.get()
            try disk.rename(temporaryPath, to: path)
            phase = .syncingDirectory(token: disk.syncDirectory(parentDirectory(of: path)))
            return .inProgress
        case let .syncingDirectory(token):
            guard completion.token == token else { return .notMine }
            try completion.result.get()
            phase = .idle
            completedGeneration = currentGeneration
            return .completed(generation: currentGeneration)
        }
    }

    /// Forgets an in-flight write after a crash of the owner (the disk dropped its syncs).
    public mutating func abandon() {
        phase = .idle
    }
}
