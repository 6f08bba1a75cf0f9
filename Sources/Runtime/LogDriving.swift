import LogStorage

extension PosixDisk {
    /// Blocks, handing sync completions to `log`, until `condition` holds or the log fails. For
    /// tools, tests and benchmarks that own one log on this thread; a broker's event loop does the
    /// same through its eventfd instead of blocking.
    @discardableResult
    public func drive(_ log: PartitionLog, until condition: () -> Bool) -> Bool {
        var completions: [SyncCompletion] = []
        while !condition() {
            if log.failure != nil { return false }
            waitForCompletions(timeoutMilliseconds: 1_000)
            pollCompletions(into: &completions)
            for completion in completions { log.handle(completion) }
            completions.removeAll(keepingCapacity: true)
        }
        return true
    }
}
