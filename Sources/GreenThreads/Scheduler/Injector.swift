import Synchronization

/// The injection queue: work that arrives from outside a worker (a plain OS
/// thread spawning or waking a green thread) and the overflow of a full
/// local deque. One per NUMA node, so a node's workers drain their own
/// node's injector first.
///
/// An intrusive FIFO under a spin lock: pushes and pops are rare next to
/// local-deque traffic, and `length` lets idle workers look without locking.
final class Injector: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `head`, `tail` and the fibers' queue
    // links are guarded by `lock`; `length` is atomic.

    private let lock = SpinLock()
    @exclusivity(unchecked) private var head: Unmanaged<Fiber>?  // under `lock`
    @exclusivity(unchecked) private var tail: Unmanaged<Fiber>?
    /// Read without the lock as a hint; exact under it.
    private let length = Atomic<Int>(0)

    var isEmpty: Bool { length.load(ordering: .acquiring) == 0 }

    func push(_ fiber: Unmanaged<Fiber>) {
        fiber._withUnsafeGuaranteedRef { $0.queueNext = nil }
        lock.lock()
        if let tail { tail._withUnsafeGuaranteedRef { $0.queueNext = fiber } } else { head = fiber }
        tail = fiber
        length.add(1, ordering: .releasing)
        lock.unlock()
    }

    /// Queues a whole batch in one lock round trip (nothing if it is empty).
    func push(_ batch: FiberBatch) {
        guard let first = batch.first, let last = batch.last else { return }
        last._withUnsafeGuaranteedRef { $0.queueNext = nil }
        lock.lock()
        if let tail { tail._withUnsafeGuaranteedRef { $0.queueNext = first } } else { head = first }
        tail = last
        length.add(batch.count, ordering: .releasing)
        lock.unlock()
    }

    func pop() -> Unmanaged<Fiber>? {
        popBatch(max: 1)
    }

    /// Takes up to `max` items in one lock hold, as a chain linked through
    /// `queueNext` and ending in nil. A worker refilling its deque from here
    /// would otherwise take the lock once per item while a spilling worker
    /// fights it for the same lock.
    func popBatch(max: Int) -> Unmanaged<Fiber>? {
        if isEmpty { return nil }
        lock.lock()
        guard let first = head else {
            lock.unlock()
            return nil
        }
        var last = first
        var n = 1
        while n < max, let next = last._withUnsafeGuaranteedRef({ $0.queueNext }) {
            last = next
            n += 1
        }
        head = last._withUnsafeGuaranteedRef { f in
            let rest = f.queueNext
            f.queueNext = nil
            return rest
        }
        if head == nil { tail = nil }
        length.subtract(n, ordering: .relaxed)
        lock.unlock()
        return first
    }
}

/// Green threads linked through `queueNext` on their way to an injector:
/// what a deque spill, a retiring spare or a yield-queue rescue hands over
/// at once. Owned by whoever builds it; the links are theirs to write until
/// `Injector.push`.
struct FiberBatch {
    private(set) var first: Unmanaged<Fiber>?
    private(set) var last: Unmanaged<Fiber>?
    private(set) var count = 0

    /// Appends the green thread whose queue bits these are (never 0).
    mutating func append(_ bits: UInt) {
        let f = Worker.fiber(bits)
        if let last { last._withUnsafeGuaranteedRef { $0.queueNext = f } } else { first = f }
        last = f
        count += 1
    }
}
