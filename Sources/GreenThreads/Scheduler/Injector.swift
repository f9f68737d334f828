import CContext
import Synchronization

/// The injection queue: work that arrives from outside a worker (a plain OS
/// thread spawning or waking a green thread) and the overflow of a full
/// local deque. One per NUMA node: a spawn from outside goes to the node of
/// the CPU its caller runs on (`RuntimeCore.externalNode`), a wake from
/// outside to the node of the worker that spawned the thread, a spill to
/// the spilling worker's node; a node's workers drain their own node's
/// injector and take from another's only once their node is dry
/// (Worker+Steal.swift).
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

extension RuntimeCore {
    /// The node whose injector takes a green thread spawned by a plain OS
    /// thread: the node of the CPU the caller runs on, so that the thread
    /// starts near the memory its spawner just wrote (its closure's
    /// captures). When that CPU is unknown, or runs no worker of this
    /// runtime, the nodes take turns by `sequence` (the spawn's number), so
    /// outside work does not all pile onto one node.
    func externalNode(sequence: UInt64) -> Int {
        let nodes = topology.nodeCount
        if nodes == 1 { return 0 }
        return Self.node(ofCPU: Int(gt_current_cpu()), in: topology) ?? Int(sequence % UInt64(nodes))
    }

    /// The node of the workers placed on `cpu`, if any. A linear walk over
    /// the workers: an outside spawn already takes a lock and a fence, and
    /// this keeps no table that a topology change would have to follow.
    static func node(ofCPU cpu: Int, in topology: Topology) -> Int? {
        guard cpu >= 0 else { return nil }
        for w in topology.nodeOfWorker.indices where topology.cpu(ofWorker: w) == cpu {
            return topology.nodeOfWorker[w]
        }
        return nil
    }
}
