import TernCore

/// The scheduler's bounded priority queue, ordered by (time, sequence). The heap holds only plain
/// 24-byte keys (no references, so sifting moves bytes without retain/release or generic
/// dispatch); the events themselves wait in a slab of slots reused through a free list. The
/// generic `BoundedHeap` from TernCore is not specialised across the module boundary and cost
/// close to half of a run's time. This one is generic over its payload but inlinable, so the
/// scheduler's module specialises it for its own events (unspecialised, fetching the payload's
/// generic metadata on every pop cost the simulator 7% of its speed). `public`, unlike the rest of
/// SimWorld: Swift 6.3 specialises `@inlinable` code in another module only when it is public.
public struct EventQueue<Payload> {
    @usableFromInline
    struct Key {
        @usableFromInline let time: Int64
        @usableFromInline let sequence: UInt64
        @usableFromInline let slot: Int32

        @inlinable
        init(time: Int64, sequence: UInt64, slot: Int32) {
            self.time = time
            self.sequence = sequence
            self.slot = slot
        }

        @inlinable @inline(__always)
        func precedes(_ other: Key) -> Bool {
            time != other.time ? time < other.time : sequence < other.sequence
        }
    }

    @usableFromInline var heap: [Key] = []
    @usableFromInline var slots: [Payload?] = []
    @usableFromInline var freeSlots: [Int32] = []
    public let capacity: Int

    @inlinable
    public init(capacity: Int) {
        precondition(capacity > 0 && capacity <= Int(Int32.max), "the event queue capacity must fit a slot index")
        self.capacity = capacity
    }

    @inlinable public var count: Int { heap.count }
    @inlinable public var isEmpty: Bool { heap.isEmpty }

    /// The earliest entry's time, if any.
    @inlinable public var earliestTime: Instant? { heap.first.map { Instant(nanoseconds: $0.time) } }

    /// Returns false (and stores nothing) when the queue is full.
    @inlinable
    public mutating func insert(_ payload: Payload, time: Instant, sequence: UInt64) -> Bool {
        guard heap.count < capacity else { return false }
        let slot: Int32
        if let reused = freeSlots.popLast() {
            slot = reused
            slots[Int(slot)] = payload
        } else {
            slot = Int32(slots.count)
            slots.append(payload)
        }
        heap.append(Key(time: time.nanoseconds, sequence: sequence, slot: slot))
        siftUp(heap.count - 1)
        return true
    }

    @inlinable
    public mutating func popMin() -> (time: Instant, sequence: UInt64, payload: Payload)? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        let slot = Int(first.slot)
        let payload = slots[slot].take()!
        freeSlots.append(first.slot)
        return (Instant(nanoseconds: first.time), first.sequence, payload)
    }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var child = start
        let moving = heap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard moving.precedes(heap[parent]) else { break }
            heap[child] = heap[parent]
            child = parent
        }
        heap[child] = moving
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
        var parent = start
        let moving = heap[parent]
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && heap[right].precedes(heap[left]) ? right : left
            guard heap[smaller].precedes(moving) else { break }
            heap[parent] = heap[smaller]
            parent = smaller
        }
        heap[parent] = moving
    }
}
