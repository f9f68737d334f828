import CContext
import Synchronization

/// Recycles green stacks so that spawning never maps memory in the steady
/// state (a fresh mapping costs microseconds; a pooled one, nanoseconds).
///
/// Each worker keeps a LIFO of stacks (the most recently used are the
/// warmest in cache). A worker whose pool grows past `spillAt` moves half
/// to the shared pool, and one that runs dry refills from it, so stacks
/// follow the work when green threads start on one worker and end on
/// another. An idle worker returns the memory of all but `warmCount` of its
/// stacks to the kernel (`madvise`), keeping the mappings.
struct StackPool: ~Copyable {
    static let warmCount = 64
    static let spillAt = 512
    static let refillBatch = 128

    private var items = LocalLIFO<gt_stack>(capacity: 256)
    var count: Int { items.count }
    /// Entries below this index were discarded since they were pooled.
    private var cleanBelow = 0

    @inline(__always)
    mutating func take() -> gt_stack? {
        guard let s = items.take() else { return nil }
        if cleanBelow > items.count { cleanBelow = items.count }
        return s
    }

    @inline(__always)
    mutating func put(_ stack: gt_stack) {
        items.put(stack)
    }

    /// Hands the oldest half to `shared`.
    mutating func spillHalf(into shared: SharedStackPool) {
        let half = count / 2
        items.removeOldest(half) { shared.put($0) }
        cleanBelow = max(0, cleanBelow - half)
    }

    /// Stacks `trim` discards per call. Each is a syscall (3–10 µs here,
    /// with its TLB shoot-down), and a pool left by a million sleepers
    /// holds hundreds of thousands, so trimming goes in slices between
    /// which the worker checks for work, due timers and shutdown. Small
    /// slices, because a worker trims whenever it falls idle, also between
    /// the timers of a busy second: trimming 1,000 stacks in one go made
    /// 1–50 ms sleeps wake milliseconds late.
    static let trimSlice = 32

    /// Returns the pages of up to `trimSlice` stacks beyond the warm set to
    /// the kernel. Returns true once nothing is left to trim.
    mutating func trim() -> Bool {
        let keep = count - Self.warmCount
        if keep <= cleanBelow { return true }
        let end = min(keep, cleanBelow + Self.trimSlice)
        // One process_madvise for the slice where the kernel allows it.
        _ = items.withItems { gt_stacks_discard($0 + cleanBelow, Int32(end - cleanBelow)) }
        cleanBelow = end
        return end == keep
    }

    /// Discards the oldest half, the part `spillHalf` hands on, unless
    /// already clean.
    mutating func trimOldestHalf() {
        let half = count / 2
        if cleanBelow >= half { return }
        _ = items.withItems { gt_stacks_discard($0 + cleanBelow, Int32(half - cleanBelow)) }
        cleanBelow = half
    }

    mutating func removeAll(_ body: (inout gt_stack) -> Void) {
        items.forEach { body(&$0.pointee) }
        items.removeAll()
        cleanBelow = 0
    }
}

/// The pool shared by all workers, for stacks that migrated.
final class SharedStackPool: @unchecked Sendable {
    private let lock = SpinLock()
    private var items: [gt_stack] = []

    func put(_ stacks: UnsafeBufferPointer<gt_stack>) {
        lock.withLock { items.append(contentsOf: stacks) }
    }

    func put(_ stack: gt_stack) {
        lock.withLock { items.append(stack) }
    }

    func take(upTo n: Int, into pool: inout StackPool) -> Bool {
        lock.lock()
        let k = min(n, items.count)
        for _ in 0..<k { pool.put(items.removeLast()) }
        lock.unlock()
        return k > 0
    }

    func take() -> gt_stack? {
        lock.withLock { items.popLast() }
    }

    func removeAll() -> [gt_stack] {
        lock.withLock {
            let all = items
            items.removeAll()
            return all
        }
    }
}
