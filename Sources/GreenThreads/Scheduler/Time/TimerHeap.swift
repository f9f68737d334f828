import CContext
import Synchronization

/// A worker's pending timers: a binary min-heap on the deadline, beside a
/// sorted FIFO lane for timers that arrive in deadline order.
///
/// Each entry is a `Waker` for one specific wait, so a timer whose wait
/// ended some other way (cancellation, a select that took another case)
/// needs no removal on the spot: its claim fails when it comes due ("lazy
/// deletion"). So that such dead entries cost nothing later — neither
/// memory nor the green thread object they reference — the waiter reports
/// each one (`noteStale`), and once they could be half the timers that call
/// filters them out and re-heapifies in O(n): O(1) per cancelled timer
/// amortized (Go's timer heaps did the same), and a heap never holds more
/// dead entries than live ones (or `purgeFloor`).
///
/// **The lane.** Most timers are a fixed duration after now: a sleep of one
/// second in a loop, a request's timeout, a ticker. Added on one worker,
/// their deadlines come in increasing order, and a heap gains nothing from
/// them: each insert is a leaf that stays put, and each pop moves the
/// latest deadline to the root and sifts it down the whole height, about
/// 20 levels and as many cache misses at 10^6 pending: ~350 ns per timer,
/// a tenth of what a sleeper costs beyond its sleep in `gt-bench timers`
/// (10^6 sleeps of 1 s), where the lane costs ~50. So an entry whose
/// deadline is no earlier than the lane's last goes to the end of the lane,
/// a plain array read from a moving head; any other entry goes to the
/// heap. The lane is sorted by construction (deadline, then `sequence`),
/// the earliest timer is the smaller of the two heads, and an add or a pop
/// of the lane is O(1) and touches memory in order. A mix of durations
/// sends the entries that break the order to the heap; the heap then holds
/// no more than it would alone, and one comparison is all the lane adds.
/// Stale entries are purged from both, and the lane stays sorted.
///
/// Rejected: a hierarchical timer wheel (the kernel's, Tokio's). It makes
/// every add and pop O(1), but fires by slot, not by exact deadline (a
/// 1 ns timer waits for the tick), and cascading a million entries between
/// levels moves each more than once; the lane gets O(1) for the common case
/// and keeps exact deadlines and FIFO order among equal deadlines. A 4-ary
/// heap (Go's) halves the height, but in-order timers would still sift
/// each pop from root to leaf; the lane does not sift them at all.
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

        /// The timers' one order, for the heap and between the two heads:
        /// by deadline, then first added first.
        func precedes(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }

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
    /// Entries in (deadline, sequence) order; the live ones are
    /// `lane[laneHead...]`, those before the head have fired.
    @exclusivity(unchecked) private var lane: [Entry] = []  // Guarded by: lock
    @exclusivity(unchecked) private var laneHead = 0  // Guarded by: lock
    @exclusivity(unchecked) private var sequence: UInt64 = 0  // Guarded by: lock
    /// Earliest deadline, `Int64.max` when empty.
    let nextDeadline = Atomic<Int64>(Int64.max)
    /// Entries whose wait ended some other way, as reported by the waiters
    /// (`noteStale`). An over-estimate: a report can come after its entry
    /// was popped or purged, which only brings the next purge forward; a
    /// purge costs at most twice the reports that triggered it.
    private let stale = Atomic<Int>(0)
    /// `total`, readable without the lock.
    private let entries = Atomic<Int>(0)
    /// Below this size a heap is left as it is: it costs next to nothing.
    static let purgeFloor = 8

    init(clock: RuntimeClock) {
        self.clock = clock
    }

    deinit {
        for entry in heap { entry.target.release() }
        for entry in lane[laneHead...] { entry.target.release() }
    }

    /// Pending entries, stale ones included (held: lock).
    private var total: Int { heap.count + lane.count - laneHead }

    /// Allocates the first entries' storage from the calling thread, the
    /// owning worker's (first touch puts it on that worker's node).
    func reserveOnCaller() {
        lock.withLock {
            heap.reserveCapacity(Self.reservedEntries)
            lane.reserveCapacity(Self.reservedEntries)
        }
    }

    /// 4 KiB of entries: one page for the heap, one for the lane.
    static let reservedEntries = 128

    func add(deadline: Int64, waker: Waker) {
        lock.lock()
        sequence &+= 1
        let entry = Entry(deadline: deadline, sequence: sequence,
                          target: Unmanaged.passRetained(waker.target), ticket: waker.ticket)
        if laneHead == lane.count || deadline >= lane[lane.count - 1].deadline {
            // Later than every lane entry, and its sequence is the largest
            // yet: the lane stays sorted.
            lane.append(entry)
        } else {
            heap.append(entry)
            siftUp(heap.count - 1)
        }
        nextDeadline.store(earliestDeadline, ordering: .releasing)
        entries.store(total, ordering: .relaxed)
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
            if total >= Self.purgeFloor && 2 * stale.load(ordering: .relaxed) >= total {
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
    var count: Int { lock.withLock { total } }

    /// Drops entries whose wait is over; returns the references they held,
    /// for the caller to release once it dropped the lock (held here).
    private func purgeStale() -> [Unmanaged<WaitTarget>] {
        var dead: [Unmanaged<WaitTarget>] = []
        // One allocation, no larger than the timers, instead of one per
        // doubling: a purge of a busy heap drops thousands.
        dead.reserveCapacity(total)
        let isDead = { (entry: Entry) -> Bool in
            if entry.isPending { return false }
            dead.append(entry.target)
            return true
        }
        heap.removeAll(where: isDead)
        lane.removeFirst(laneHead)
        laneHead = 0
        lane.removeAll(where: isDead)  // keeps the order: still sorted
        stale.store(0, ordering: .relaxed)
        Self.shrinkIfSparse(&heap)
        Self.shrinkIfSparse(&lane)
        entries.store(total, ordering: .relaxed)
        var i = heap.count / 2
        while i > 0 {
            i -= 1
            siftDown(i)
        }
        nextDeadline.store(earliestDeadline, ordering: .releasing)
        return dead
    }

    /// A burst of timers left a big buffer behind: give it back.
    private static func shrinkIfSparse(_ entries: inout [Entry]) {
        guard entries.capacity > 1024 && entries.capacity > 4 * entries.count else { return }
        var smaller: [Entry] = []
        smaller.reserveCapacity(entries.count)
        smaller.append(contentsOf: entries)
        entries = smaller
    }

    /// The earlier of the two heads' deadlines, `Int64.max` with no timer
    /// (held: lock).
    private var earliestDeadline: Int64 {
        let h = heap.first?.deadline ?? Int64.max
        return laneHead < lane.count ? min(h, lane[laneHead].deadline) : h
    }

    /// Whether the earliest entry is the lane's head rather than the
    /// heap's root, both present (held: lock).
    private func laneFirst() -> Bool { lane[laneHead].precedes(heap[0]) }

    /// Removes and returns the earliest entry if it is due at `now`
    /// (held: lock).
    private func popDue(now: Int64) -> Entry? {
        let laneHas = laneHead < lane.count
        if laneHas && (heap.isEmpty || laneFirst()) {
            let entry = lane[laneHead]
            if entry.deadline > now { return nil }
            laneHead += 1
            if laneHead == lane.count {
                lane.removeAll(keepingCapacity: true)
                laneHead = 0
            } else if laneHead >= 1024 && 2 * laneHead >= lane.count {
                // Amortized O(1): each entry moves at most once per pop of
                // an entry before it.
                lane.removeFirst(laneHead)
                laneHead = 0
            }
            return entry
        }
        guard let first = heap.first, first.deadline <= now else { return nil }
        removeFirst()
        return first
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
        while let entry = popDue(now: now) { due.append(entry.takeWaker()) }
        nextDeadline.store(earliestDeadline, ordering: .releasing)
        entries.store(total, ordering: .relaxed)
        lock.unlock()
        var fired = 0
        for w in due where w.wake(.timedOut) { fired += 1 }
        return fired
    }

    /// Drops every entry, waking their waits as cancelled (shutdown).
    func drainAll() -> [Waker] {
        lock.lock()
        let all = heap.map { $0.takeWaker() } + lane[laneHead...].map { $0.takeWaker() }
        heap.removeAll()
        lane.removeAll()
        laneHead = 0
        nextDeadline.store(Int64.max, ordering: .releasing)
        entries.store(0, ordering: .relaxed)
        lock.unlock()
        return all
    }

    private func less(_ a: Int, _ b: Int) -> Bool { heap[a].precedes(heap[b]) }

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
