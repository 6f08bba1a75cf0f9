import CSystem
import Glibc

/// A system call that failed: which call, and the errno it left.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    public let operation: String
    public let code: Int32

    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation) failed (errno \(code): \(String(cString: strerror(code))))" }
}

/// The errno the last failed call left on this thread.
@inline(__always)
public func lastErrorNumber() -> Int32 { tern_errno() }

/// The one way the shells make a system call that reports failure as -1 and sets errno: retries
/// while the call is interrupted by a signal (EINTR), and turns any other failure into a thrown
/// error. Returns the call's non-negative result.
@inline(__always)
public func systemCall<Outcome: FixedWidthInteger & SignedInteger>(
    _ operation: StaticString, _ call: () -> Outcome
) throws(SystemCallError) -> Outcome {
    while true {
        let outcome = call()
        if outcome >= 0 { return outcome }
        let code = tern_errno()
        if code == EINTR { continue }
        throw SystemCallError(operation: "\(operation)", code: code)
    }
}

/// `systemCall` for calls that report failure as a null pointer and set errno (`opendir`).
@inline(__always)
public func systemCall<Pointer>(_ operation: StaticString, _ call: () -> Pointer?) throws(SystemCallError) -> Pointer {
    while true {
        if let pointer = call() { return pointer }
        let code = tern_errno()
        if code == EINTR { continue }
        throw SystemCallError(operation: "\(operation)", code: code)
    }
}

/// Closes a descriptor, deliberately without retrying EINTR: Linux releases the descriptor number
/// before it can report EINTR, so a retry could close a number another thread has just been given.
/// Errors are ignored: durability comes from fdatasync/fsync, never from close.
public func closeDescriptor(_ descriptor: Int32) {
    precondition(descriptor >= 0, "closing an invalid descriptor \(descriptor)")
    _ = Glibc.close(descriptor)
}
