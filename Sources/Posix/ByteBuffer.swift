/// A growable byte buffer with a read and a write index, for socket input and output: bytes are
/// read from the socket straight into its free tail and sent straight from its readable part, so
/// the only copy of a frame is the one that hands it to its consumer.
///
/// Growth is driven by bytes that actually arrive (or are queued), never by a length a peer
/// claims: callers bound `readableCount` themselves.
public final class ByteBuffer {
    private var storage: UnsafeMutableRawPointer?
    public private(set) var capacity = 0
    public private(set) var readerIndex = 0
    public private(set) var writerIndex = 0

    /// An empty buffer larger than this is released, so one large frame does not pin its memory
    /// for the connection's life.
    public let retainedCapacityBytes: Int

    public init(retainedCapacityBytes: Int = 256 * 1024) {
        self.retainedCapacityBytes = retainedCapacityBytes
    }

    deinit { storage?.deallocate() }

    public var readableCount: Int { writerIndex - readerIndex }
    public var isEmpty: Bool { readerIndex == writerIndex }

    public var readableBytes: UnsafeRawBufferPointer {
        guard let storage else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: storage + readerIndex, count: readableCount)
    }

    /// Makes room for `count` more bytes after the readable ones (moving them to the front first
    /// when that is enough), then lets `body` write up to `count` bytes and returns what it wrote.
    public func write(upTo count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        precondition(count > 0, "writing needs room for at least one byte")
        reserveWritable(count)
        let written = body(UnsafeMutableRawBufferPointer(start: storage! + writerIndex, count: count))
        precondition(written >= 0 && written <= count, "wrote \(written) bytes into room for \(count)")
        writerIndex += written
        return written
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = write(upTo: bytes.count) { room in
            room.copyMemory(from: bytes)
            return bytes.count
        }
    }

    public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    public func appendInt32BigEndian(_ value: Int32) {
        withUnsafeBytes(of: value.bigEndian) { append($0) }
    }

    /// The big-endian int32 at `offset` bytes into the readable part.
    public func readableInt32BigEndian(at offset: Int = 0) -> Int32 {
        precondition(offset >= 0 && offset + 4 <= readableCount, "reading past the readable bytes")
        var value: Int32 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: readableBytes[offset..<offset + 4])) }
        return Int32(bigEndian: value)
    }

    /// Copies `count` readable bytes from `offset` into an array (the one copy a frame gets).
    public func readableArray(from offset: Int, count: Int) -> [UInt8] {
        precondition(offset >= 0 && count >= 0 && offset + count <= readableCount, "reading past the readable bytes")
        return [UInt8](UnsafeRawBufferPointer(rebasing: readableBytes[offset..<offset + count]))
    }

    public func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableCount, "consuming \(count) of \(readableCount) bytes")
        readerIndex += count
        if readerIndex == writerIndex {
            readerIndex = 0
            writerIndex = 0
            if capacity > retainedCapacityBytes {
                storage?.deallocate()
                storage = nil
                capacity = 0
            }
        }
    }

    private func reserveWritable(_ count: Int) {
        if capacity - writerIndex >= count { return }
        let readable = readableCount
        if readerIndex > 0 && capacity - readable >= count {
            // Enough room once the readable bytes move to the front.
            if readable > 0 { (storage! ).copyMemory(from: storage! + readerIndex, byteCount: readable) }
            readerIndex = 0
            writerIndex = readable
            return
        }
        var newCapacity = max(capacity, 4_096)
        while newCapacity - readable < count { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        if readable > 0 { newStorage.copyMemory(from: storage! + readerIndex, byteCount: readable) }
        storage?.deallocate()
        storage = newStorage
        capacity = newCapacity
        readerIndex = 0
        writerIndex = readable
    }
}
