import CContext
import Synchronization

/// A worker's pending timers: a binary min-heap on the deadline.
///
/// Each entry is a `Waker` for one specific wait, so a timer whose wait
/// ended some other way (cancellation, a select that took another case)
/// needs no removal on the spot: its claim fails when it comes due ("lazy
/// deletion"). So that such dead entries cost nothing later — neither
/// memory nor the green thread object they reference — the waiter reports
/// each one (`noteStale`), and once they could be half the heap that call
/// filters them out and re-heapifies in O(n): O(1) per cancelled timer
/// amortized (Go's timer heaps did the same), and a heap never holds more
/// dead entries than live ones (or `purgeFloor`).
///
/// An entry is 32 bytes, so a million pending sleeps cost 32 MB here.
/// Guarded by a spin lock because idle workers fire the expired timers of
/// a busy one; `nextDeadline` lets them look without taking the lock.
final class TimerHeap: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the entries are guarded by the heap's
    // spin lock; `nextDeadline` is an atomic read without it as a hint.

    /// Plain data, so that sifting moves bytes: with a strong reference
    /// inside, every swap retained and released (a fifth of the time of a
    /// million sleeps). The heap owns one retain of `target` per entry,
    /// taken in `add` and given back when the entry leaves.
    private struct Entry {
        var deadline: Int64
        var sequence: UInt64  // FIFO among equal deadlines
        var target: Unmanaged<WaitTarget>
        var ticket: UInt64

        /// The waker, taking over the heap's retain.
        func takeWaker() -> Waker {
            Waker(target: target.takeRetainedValue(), ticket: ticket)
        }

        var isPending: Bool {
            target._withUnsafeGuaranteedRef { $0.claim.load(ordering: .acquiring) == ticket }
        }
    }

    private let lock = SpinLock()
    private let clock: RuntimeClock
    // @exclusivity(unchecked): the lock already serializes every access,
    // so the dynamic check would be pure overhead on every timer added.
    @exclusivity(unchecked) private var heap: [Entry] = []  // Guarded by: lock
    @exclusivity(unchecked) private var sequence: UInt64 = 0  // Guarded by: lock
    /// Earliest deadline, `Int64.max` when empty.
    let nextDeadline = Atomic<Int64>(Int64.max)
    /// Entries whose wait ended some other way, as reported by the waiters
    /// (`noteStale`). An over-estimate: a report can come after its entry
    /// was popped or purged, which only brings the next purge forward; a
    /// purge costs at most twice the reports that triggered it.
    private let stale = Atomic<Int>(0)
    /// `heap.count`, readable without the lock.
    private let entries = Atomic<Int>(0)
    /// Below this size a heap is left as it is: it costs next to nothing.
    static let purgeFloor = 8

    init(clock: RuntimeClock) {
        self.clock = clock
    }

    deinit {
        for entry in heap { entry.target.release() }
    }

    /// Allocates the first entries' storage from the calling thread, the
    /// owning worker's (first touch puts it on that worker's node).
    func reserveOnCaller() {
        lock.withLock { heap.reserveCapacity(Self.reservedEntries) }
    }

    /// 4 KiB of entries: one page.
    static let reservedEntries = 128

    func add(deadline: Int64, waker: Waker) {
        lock.lock()
        sequence &+= 1
        heap.append(Entry(deadline: deadline, sequence: sequence,
                          target: Unmanaged.passRetained(waker.target), ticket: waker.ticket))
        siftUp(heap.count - 1)
        nextDeadline.store(heap[0].deadline, ordering: .releasing)
        entries.store(heap.count, ordering: .relaxed)
        lock.unlock()
    }

    /// Records that a timer of this heap lost its wait to another waker.
    /// The waiter calls this once it resumed with any cause but `.timedOut`;
    /// once such entries could be half the heap, it purges them.
    @inline(__always)
    func noteStale() {
        let n = stale.add(1, ordering: .relaxed).newValue
        let count = entries.load(ordering: .relaxed)
        if count >= Self.purgeFloor && 2 * n >= count {
            var dead: [Unmanaged<WaitTarget>] = []
            lock.lock()
            if heap.count >= Self.purgeFloor && 2 * stale.load(ordering: .relaxed) >= heap.count {
                dead = purgeStale()
            }
            lock.unlock()
            // Outside the lock: a last release runs deinits (a green
            // thread's result), which may take locks or even add a timer.
            for target in dead { target.release() }
        }
    }

    /// Number of entries, stale ones included, without the lock (a
    /// snapshot, for heuristics: stack compaction's `minimumSleepers`).
    var pendingCount: Int { entries.load(ordering: .relaxed) }

    /// Number of entries, stale ones included (tests).
    var count: Int { lock.withLock { heap.count } }

    /// Drops entries whose wait is over; returns the references they held,
    /// for the caller to release once it dropped the lock (held here).
    private func purgeStale() -> [Unmanaged<WaitTarget>] {
        var dead: [Unmanaged<WaitTarget>] = []
        // One allocation, no larger than the heap, instead of one per
        // doubling: a purge of a busy heap drops thousands.
        dead.reserveCapacity(heap.count)
        heap.removeAll { entry in
            if entry.isPending { return false }
            dead.append(entry.target)
            return true
        }
        stale.store(0, ordering: .relaxed)
        if heap.capacity > 1024 && heap.capacity > 4 * heap.count {
            // A burst of timers left a big buffer behind: give it back.
            var smaller: [Entry] = []
            smaller.reserveCapacity(heap.count)
            smaller.append(contentsOf: heap)
            heap = smaller
        }
        entries.store(heap.count, ordering: .relaxed)
        var i = heap.count / 2
        while i > 0 {
            i -= 1
            siftDown(i)
        }
        nextDeadline.store(heap.first?.deadline ?? Int64.max, ordering: .releasing)
        return dead
    }

    /// Fires every timer due at `now`. Returns how many wakers it claimed.
    /// The wakes run after the lock is dropped: waking schedules a green
    /// thread, which may need other locks.
    @discardableResult
    func fireExpired(now: Int64) -> Int {
        guard nextDeadline.load(ordering: .acquiring) <= now else { return 0 }
        return fire(now: now)
    }

    /// Fires due timers, reading the clock only if any timer is pending.
    @discardableResult
    @inline(__always)
    func fireExpiredIfAny() -> Int {
        let next = nextDeadline.load(ordering: .acquiring)
        if next == Int64.max { return 0 }
        let now = clock.now()
        return next <= now ? fire(now: now) : 0
    }

    private func fire(now: Int64) -> Int {
        guard lock.tryLock() else { return 0 }  // someone else is firing them
        var due: [Waker] = []
        while let first = heap.first, first.deadline <= now {
            due.append(first.takeWaker())
            removeFirst()
        }
        nextDeadline.store(heap.first?.deadline ?? Int64.max, ordering: .releasing)
        entries.store(heap.count, ordering: .relaxed)
        lock.unlock()
        var fired = 0
        for w in due where w.wake(.timedOut) { fired += 1 }
        return fired
    }

    /// Drops every entry, waking their waits as cancelled (shutdown).
    func drainAll() -> [Waker] {
        lock.lock()
        let all = heap.map { $0.takeWaker() }
        heap.removeAll()
        nextDeadline.store(Int64.max, ordering: .releasing)
        entries.store(0, ordering: .relaxed)
        lock.unlock()
        return all
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].deadline < heap[b].deadline
            || (heap[a].deadline == heap[b].deadline && heap[a].sequence < heap[b].sequence)
    }

    private func siftUp(_ index: Int) {
        var i = index
        while i > 0 {
            let parent = (i - 1) / 2
            if !less(i, parent) { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private func removeFirst() {
        let last = heap.count - 1
        heap.swapAt(0, last)
        heap.removeLast()
        siftDown(0)
    }

    private func siftDown(_ index: Int) {
        var i = index
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && less(l, m) { m = l }
            if r < heap.count && less(r, m) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
    }
}
