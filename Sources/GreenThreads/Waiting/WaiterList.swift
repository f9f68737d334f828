// WaiterList.swift: the queue a channel or a Sync primitive keeps its parked
// waiters in, and the two halves of the protocol around it.
//
// Every such primitive guards its lists with one SpinLock and follows the
// ownership rules of Waiter.swift. The protocol has two sides, each written
// once here:
//
//  * The waiting side (`Park.waitQueued(_:lock:...)`). The caller holds the
//    lock from the check that found it must wait until its waiter is
//    queued, so nothing that would end the wait can pass between the check
//    and the queueing (a lost wake-up). The lock is released inside Park's
//    register step, before the switch. A wait that ended other than by a
//    claim (cancellation, the deadline) was not dequeued, because a claimer
//    always dequeues what it claims; its own thread unlinks it under the
//    lock before the stack frame holding it can go. (GreenMutex keeps its
//    own loop on the same rules: its register step may take the mutex
//    instead of queueing, and a woken waiter that loses the race re-queues
//    at the front.)
//
//  * The waking side (`popClaimed`, `claimAll`). A waiter is claimed only
//    while it is dequeued under the lock, and resumed only after the lock is
//    released: resuming a green thread may wake a sleeping worker through a
//    futex, which must never happen under a SpinLock. Waking everyone
//    (`close`, `broadcast`, a WaitGroup reaching zero) therefore claims them
//    all under the lock, chained through their `next` links, which dequeuing
//    just freed, and resumes the chain afterwards (`ClaimedWaiters`).

/// An intrusive doubly linked FIFO of waiters: O(1) append, pop and
/// removal from the middle (a cancelled waiter, a losing select case).
///
/// Not thread-safe: every use is under the owning primitive's lock.
@usableFromInline
struct WaiterList {
    @usableFromInline private(set) var head: WaiterRef?
    private var tail: WaiterRef?
    /// Queued nodes, including ones whose wait already ended (not yet
    /// unlinked).
    private(set) var count = 0

    @inlinable
    var isEmpty: Bool { head == nil }

    mutating func append(_ node: WaiterRef) {
        precondition(!node.pointee.isQueued, "GreenThreads: waiter queued twice")
        node.pointee.isQueued = true
        node.pointee.next = nil
        node.pointee.prev = tail
        if let t = tail { t.pointee.next = node } else { head = node }
        tail = node
        count += 1
    }

    /// Puts `node` first: a mutex waiter that was woken and lost the race to
    /// a newcomer keeps its place at the head (Go's LIFO re-queue).
    mutating func prepend(_ node: WaiterRef) {
        precondition(!node.pointee.isQueued, "GreenThreads: waiter queued twice")
        node.pointee.isQueued = true
        node.pointee.prev = nil
        node.pointee.next = head
        if let h = head { h.pointee.prev = node } else { tail = node }
        head = node
        count += 1
    }

    mutating func popFirst() -> WaiterRef? {
        guard let node = head else { return nil }
        remove(node)
        return node
    }

    /// Unlinks `node` if it is still queued; a no-op otherwise (a waker
    /// dequeued it first).
    mutating func remove(_ node: WaiterRef) {
        guard node.pointee.isQueued else { return }
        let next = node.pointee.next, prev = node.pointee.prev
        if let p = prev { p.pointee.next = next } else { head = next }
        if let n = next { n.pointee.prev = prev } else { tail = prev }
        node.pointee.next = nil
        node.pointee.prev = nil
        node.pointee.isQueued = false
        count -= 1
    }

    /// Dequeues the first waiter whose claim the caller wins, dropping the
    /// dead ones in front of it (lazy removal: their own threads would
    /// unlink them anyway, and finding them here costs one failed CAS).
    /// The caller must `resume` the returned waiter.
    @inlinable @inline(__always)
    mutating func popClaimed() -> WaiterRef? {
        head == nil ? nil : popClaimedSlow()
    }

    @usableFromInline
    mutating func popClaimedSlow() -> WaiterRef? {
        while let node = popFirst() {
            if node.claim() { return node }
        }
        return nil
    }

    /// Claims every live waiter, dropping the dead ones, and returns them
    /// chained, to be resumed once the caller has released the lock. A
    /// non-nil `outcome` is written into each (a claimer's result, see
    /// Waiter.swift).
    @inline(__always)
    mutating func claimAll(outcome: Waiter.Outcome? = nil) -> ClaimedWaiters {
        var claimed = ClaimedWaiters()
        claimAll(outcome: outcome, into: &claimed)
        return claimed
    }

    /// `claimAll` adding to `claimed`: one chain for the waiters of several
    /// lists under the same lock (a channel's receivers and senders).
    @inline(__always)
    mutating func claimAll(outcome: Waiter.Outcome? = nil, into claimed: inout ClaimedWaiters) {
        while let w = popClaimed() {
            if let outcome { w.pointee.outcome = outcome }
            claimed.add(w)
        }
    }
}

/// Waiters claimed under their primitive's lock and not yet resumed,
/// chained through `Waiter.next` (dequeuing cleared it, and nothing else
/// reads it while a waiter is in no list). Noncopyable: the chain is
/// resumed exactly once.
struct ClaimedWaiters: ~Copyable {
    private var first: WaiterRef?

    init() {}

    @inline(__always)
    fileprivate mutating func add(_ waiter: WaiterRef) {
        waiter.pointee.next = first
        first = waiter
    }

    /// Resumes every waiter of the chain, the last claimed first. Call it
    /// after releasing the lock they were claimed under.
    @inline(__always)
    consuming func resumeAll() {
        var next = first
        while let w = next {
            // Read (and cleared) before the resume: from its first
            // instruction the waiter is its thread's again.
            next = w.pointee.next
            w.pointee.next = nil
            w.resume()
        }
    }
}

extension Park {
    /// Queues `waiter` (with `enqueue`, into the caller's list) and parks
    /// until a claimer resumes it, cancellation ends the wait, or
    /// `deadline` (monotonic ns) passes: the waiting side of the protocol in
    /// the file header.
    ///
    /// Called with `lock` held, the lock that guards the list. The waiter is
    /// appended at once, still unseen by any claimer (they too take the
    /// lock), and bound to the wait in the register step, which then
    /// releases `lock`, and then `mutex` if given (a condition variable's:
    /// released only once a `signal` can find the waiter). Returns with
    /// `lock` released and `waiter` out of the list: `unlink` (under `lock`)
    /// removes it if the wait ended other than by a claim.
    ///
    /// - Returns: why the wait ended, and whether it began: `queued` is
    ///   false if the thread was cancelled, or a scope around it tripped,
    ///   before it could wait (then nothing happened: `mutex` is still
    ///   held). `.notified` means a claimer dequeued and resumed the waiter,
    ///   having written its results first.
    @inline(__always)
    static func waitQueued(
        _ waiter: WaiterRef,
        lock: borrowing SpinLock,
        reason: WaitReason,
        deadline: Int64? = nil,
        releasing mutex: GreenMutex? = nil,
        enqueue: (WaiterRef) -> Void,
        unlink: (WaiterRef) -> Void
    ) -> (cause: WakeCause, queued: Bool) {
        // Appending here rather than in the register step keeps the list
        // out of the register closure: that closure is a separate function
        // (Park.waitQueued is out of line), and a list reached from it
        // through `enqueue` would be an indirect call per park.
        enqueue(waiter)
        var registered = false
        // `reason` by value (it is trivial): an autoclosure here would be
        // called through Park's own, one more indirect call per park.
        let cause = waitQueued(reason: reason, deadline: deadline, cancellable: true) { waker in
            waiter.attach(waker)
            registered = true
            lock.unlock()
            mutex?.unlock()
            return true
        }
        guard registered else {
            // Already cancelled: Park returned before registering.
            unlink(waiter)
            lock.unlock()
            return (cause, false)
        }
        if cause != .notified {
            lock.lock()
            unlink(waiter)
            lock.unlock()
        }
        return (cause, true)
    }
}
