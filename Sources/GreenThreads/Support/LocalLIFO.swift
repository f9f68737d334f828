/// A growable LIFO in raw memory, owned by one worker: the per-worker pools
/// (`StackPool`, `FiberCache`) keep their items here. Raw memory, not an
/// Array: an array in a worker's local state would be copied on write and
/// bounds- and exclusivity-checked on every spawn.
struct LocalLIFO<Element>: ~Copyable {
    private var items: UnsafeMutablePointer<Element>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        items = .allocate(capacity: capacity)
    }

    deinit {
        items.deinitialize(count: count)
        items.deallocate()
    }

    @inline(__always)
    mutating func take() -> Element? {
        if count == 0 { return nil }
        count -= 1
        return (items + count).move()
    }

    @inline(__always)
    mutating func put(_ item: Element) {
        if count == capacity { grow() }
        (items + count).initialize(to: item)
        count += 1
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: items, count: count)
        items.deallocate()
        items = bigger
        capacity *= 2
    }

    /// Hands the oldest `n` items to `body`, then forgets them (the
    /// newest stay, moved down).
    mutating func removeOldest(_ n: Int, _ body: (UnsafeBufferPointer<Element>) -> Void) {
        let n = min(n, count)
        body(UnsafeBufferPointer(start: items, count: n))
        items.deinitialize(count: n)
        items.moveInitialize(from: items + n, count: count - n)
        count -= n
    }

    /// The items, oldest first, in place (for work on a range of them).
    @inline(__always)
    func withItems<R>(_ body: (UnsafeMutablePointer<Element>) -> R) -> R {
        body(items)
    }

    /// Calls `body` on every item in place, oldest first.
    func forEach(_ body: (UnsafeMutablePointer<Element>) -> Void) {
        for i in 0..<count { body(items + i) }
    }

    /// Forgets every item (their owner has dealt with them).
    mutating func removeAll() {
        items.deinitialize(count: count)
        count = 0
    }
}
