import CContext
import Synchronization

/// A worker's pending timers: a binary min-heap on the deadline.
///
/// Each entry is a `Waker` for one specific wait, so a timer whose wait
/// ended some other way (cancellation, a select that took another case)
/// needs no removal: it stays until its deadline, then its claim fails and
/// it costs one failed CAS ("lazy deletion"). Entries are small (deadline,
/// reference, ticket), so a million pending sleeps cost tens of megabytes.
///
/// Guarded by a spin lock because idle workers fire the expired timers of
/// a busy one; `nextDeadline` lets them look without taking the lock.
final class TimerHeap: @unchecked Sendable {
    private struct Entry {
        var deadline: Int64
        var sequence: UInt64  // FIFO among equal deadlines
        var waker: Waker
    }

    private let lock = SpinLock()
    private let clock: RuntimeClock
    private var heap: [Entry] = []
    private var sequence: UInt64 = 0
    /// Earliest deadline, `Int64.max` when empty.
    let nextDeadline = Atomic<Int64>(Int64.max)

    init(clock: RuntimeClock) {
        self.clock = clock
    }

    func add(deadline: Int64, waker: Waker) {
        lock.lock()
        sequence &+= 1
        heap.append(Entry(deadline: deadline, sequence: sequence, waker: waker))
        siftUp(heap.count - 1)
        nextDeadline.store(heap[0].deadline, ordering: .releasing)
        lock.unlock()
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
            due.append(first.waker)
            removeFirst()
        }
        nextDeadline.store(heap.first?.deadline ?? Int64.max, ordering: .releasing)
        lock.unlock()
        var fired = 0
        for w in due where w.wake(.timedOut) { fired += 1 }
        return fired
    }

    /// Drops every entry, waking their waits as cancelled (shutdown).
    func drainAll() -> [Waker] {
        lock.lock()
        let all = heap.map(\.waker)
        heap.removeAll()
        nextDeadline.store(Int64.max, ordering: .releasing)
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
        var i = 0
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
