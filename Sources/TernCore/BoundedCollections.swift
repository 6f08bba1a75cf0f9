/// A first-in first-out queue with a fixed capacity. `append` refuses (returns false) when full,
/// so every queue in Tern states its bound and the caller decides what backpressure means.
public struct RingBuffer<Element>: Sequence {
    private var storage: [Element?]
    private var head = 0
    public private(set) var count = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "ring buffer capacity must be positive")
        storage = Array(repeating: nil, count: capacity)
    }

    public var capacity: Int { storage.count }
    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == storage.count }

    @discardableResult
    public mutating func append(_ element: Element) -> Bool {
        guard !isFull else { return false }
        storage[(head + count) % storage.count] = element
        count += 1
        return true
    }

    public var first: Element? { isEmpty ? nil : storage[head] }

    public mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = storage[head]
        storage[head] = nil
        head = (head + 1) % storage.count
        count -= 1
        return element
    }

    public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "ring buffer index out of range")
            return storage[(head + index) % storage.count]!
        }
        set {
            precondition(index >= 0 && index < count, "ring buffer index out of range")
            storage[(head + index) % storage.count] = newValue
        }
    }

    public mutating func removeAll() {
        while popFirst() != nil {}
    }

    public func makeIterator() -> AnyIterator<Element> {
        var index = 0
        return AnyIterator {
            guard index < self.count else { return nil }
            defer { index += 1 }
            return self[index]
        }
    }
}

/// A binary min-heap with a capacity bound. Ties are broken by the element's own ordering, so
/// callers that need a total order (the simulator's (time, sequence)) put it in the element.
/// Inlinable, so each user's module specialises it for its element (unspecialised, every
/// comparison goes through the generic witness).
public struct BoundedHeap<Element: Comparable> {
    @usableFromInline var elements: [Element] = []
    public let capacity: Int

    @inlinable
    public init(capacity: Int) {
        precondition(capacity > 0, "heap capacity must be positive")
        self.capacity = capacity
    }

    @inlinable public var count: Int { elements.count }
    @inlinable public var isEmpty: Bool { elements.isEmpty }
    @inlinable public var isFull: Bool { elements.count >= capacity }
    @inlinable public var min: Element? { elements.first }

    @inlinable @discardableResult
    public mutating func insert(_ element: Element) -> Bool {
        guard !isFull else { return false }
        elements.append(element)
        siftUp(elements.count - 1)
        return true
    }

    @inlinable
    public mutating func popMin() -> Element? {
        guard !elements.isEmpty else { return nil }
        elements.swapAt(0, elements.count - 1)
        let smallest = elements.removeLast()
        if !elements.isEmpty { siftDown(0) }
        return smallest
    }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard elements[child] < elements[parent] else { return }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < elements.count else { return }
            var smallest = left
            let right = left + 1
            if right < elements.count && elements[right] < elements[left] { smallest = right }
            guard elements[smallest] < elements[parent] else { return }
            elements.swapAt(smallest, parent)
            parent = smallest
        }
    }
}
