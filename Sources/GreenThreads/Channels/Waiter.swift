// Waiter.swift: a parked operation (Go's sudog) and the intrusive FIFO list
// that channels and the Sync primitives keep their waiters in.
//
// Both are deliberately non-generic. Channel code that is generic over the
// element type runs unspecialized when called from another module, and
// there every use of a generic type such as `WaiterList<Node<Element>>`
// costs a runtime metadata lookup (tens of nanoseconds, measured as most of
// a buffered send). A waiter therefore carries the value as a raw pointer
// into its own thread's stack, as Go's `sudog.elem` does: only the code at
// the two ends of a hand-off knows the type.
//
// ## Ownership of a waiter
//
// A waiter object moves through three owners, and its mutable fields belong
// to exactly one of them at a time:
//
// 1. Its *waiting thread*, which fills it in (the value it offers, if it
//    sends) before queueing it.
// 2. The *queue's lock* (a channel's or a primitive's SpinLock) while it is
//    queued. Anyone holding that lock may unlink it.
// 3. Whoever wins its `Waker`'s claim (see `Waker.claim`). A channel claims
//    a waiter only while dequeuing it under the queue lock, so from then on
//    the waiter is in no queue and the claimer alone may write its result
//    fields. The claimer then calls `Waker.resume`, whose release (the
//    fiber's run-state CAS or the futex word) hands the fields back to the
//    waiting thread.
//
// A waiter whose wait ended some other way (cancellation, a timeout, another
// select case) stays queued until its own thread, or a channel operation
// that finds its claim dead, unlinks it under the queue lock.

/// The two halves of `Waker.wake`, for hand-offs that must write into the
/// waiter between winning the claim and resuming it.
///
/// A channel delivering a value must not write the receiver's slot before it
/// knows the receiver is still waiting (it may have been cancelled, timed
/// out, or have been taken by another case of its select), and must not
/// resume it before the slot holds the value. So: claim, write, resume.
extension Waker {
    /// Wins this wait's claim without resuming the waiter. On success the
    /// caller must call `resume` exactly once, after writing the results.
    @inline(__always)
    func claim() -> Bool {
        // acquiring: we see everything the waiter wrote before arming and
        // queueing; releasing: pairs with the waiter's own disarm.
        target.claim.compareExchange(
            expected: ticket, desired: ticket &+ 1,
            successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed
        ).exchanged
    }

    /// Resumes a waiter whose claim the caller won. Never under a SpinLock:
    /// readying a green thread may wake a sleeping worker (a futex call).
    @inline(__always)
    func resume(_ cause: WakeCause = .notified) {
        target.cause = cause
        target.resumeFromWait()
    }

    /// Whether `other` is a waker for the very same wait (a select's own
    /// registration on another case).
    @inline(__always)
    func isSameWait(as other: Waker) -> Bool {
        target === other.target && ticket == other.ticket
    }
}

/// One green thread or OS thread parked in a channel operation (a plain
/// `send`/`receive`, or one case of a `select`), or in a Sync primitive.
///
/// A select queues one waiter per channel case, all with the same `Waker`,
/// so at most one of them can ever be claimed.
final class Waiter: @unchecked Sendable {
    // SAFETY: @unchecked Sendable and @exclusivity(unchecked): the fields
    // follow the hand-over protocol at the top of this file; every access
    // is made by the one current owner, so the dynamic exclusivity check
    // would only cost time on the hot path.

    /// How the wait ended, written by the claimer before `resume`.
    enum Outcome: UInt8 {
        case waiting    // not claimed (yet)
        case completed  // a value moved (sent or received), or a mutex or a
                        // semaphore permit was handed over
        case closed     // the channel was closed: nothing moved
    }

    @exclusivity(unchecked) var waker: Waker?
    /// Channels: the waiting thread's value slot, typed by the channel. A
    /// parked sender's holds its value (the receiver copies it out); a
    /// parked receiver's is uninitialized until a sender fills it in.
    /// Either way it lives on the waiting thread's stack (or in its select
    /// case), which stays put while it waits.
    @exclusivity(unchecked) var elem: UnsafeMutableRawPointer?
    @exclusivity(unchecked) var outcome = Outcome.waiting
    /// GreenMutex: when the thread first queued (monotonic ns), kept across
    /// re-queues so it notices that it is starving.
    @exclusivity(unchecked) var queuedAt: Int64 = 0
    @exclusivity(unchecked) var next: Waiter?
    // SAFETY: unowned(unsafe): `prev` is a node of the same list, kept
    // alive by its predecessor's strong `next` (or the list's head) for as
    // long as this node is linked; unlinking clears it.
    @exclusivity(unchecked) unowned(unsafe) var prev: Waiter?
    @exclusivity(unchecked) var isQueued = false

    init() {}
}

/// An intrusive doubly linked FIFO of waiters: O(1) append, pop and
/// removal from the middle (a cancelled waiter, a losing select case).
///
/// Not thread-safe: every use is under the owning primitive's lock.
struct WaiterList {
    private(set) var head: Waiter?
    private var tail: Waiter?
    /// Queued nodes, including ones whose wait already ended (not yet
    /// unlinked).
    private(set) var count = 0

    var isEmpty: Bool { head == nil }

    mutating func append(_ node: Waiter) {
        precondition(!node.isQueued, "GreenThreads: waiter queued twice")
        node.isQueued = true
        node.next = nil
        node.prev = tail
        if let t = tail { t.next = node } else { head = node }
        tail = node
        count += 1
    }

    /// Puts `node` first: a mutex waiter that was woken and lost the race to
    /// a newcomer keeps its place at the head (Go's LIFO re-queue).
    mutating func prepend(_ node: Waiter) {
        precondition(!node.isQueued, "GreenThreads: waiter queued twice")
        node.isQueued = true
        node.prev = nil
        node.next = head
        if let h = head { h.prev = node } else { tail = node }
        head = node
        count += 1
    }

    mutating func popFirst() -> Waiter? {
        guard let node = head else { return nil }
        remove(node)
        return node
    }

    /// Unlinks `node` if it is still queued; a no-op otherwise (a waker
    /// dequeued it first).
    mutating func remove(_ node: Waiter) {
        guard node.isQueued else { return }
        if let p = node.prev { p.next = node.next } else { head = node.next }
        if let n = node.next { n.prev = node.prev } else { tail = node.prev }
        node.next = nil
        node.prev = nil
        node.isQueued = false
        count -= 1
    }

    /// Dequeues the first waiter whose claim the caller wins, dropping the
    /// dead ones in front of it (lazy removal: their own threads would
    /// unlink them anyway, and finding them here costs one failed CAS).
    /// The caller must `resume` the returned waiter.
    @inline(__always)
    mutating func popClaimed() -> Waiter? {
        head == nil ? nil : popClaimedSlow()
    }

    private mutating func popClaimedSlow() -> Waiter? {
        while let node = popFirst() {
            if node.waker.unsafelyUnwrapped.claim() { return node }
        }
        return nil
    }

    /// Whether some queued waiter could be claimed right now, not counting
    /// the waits of `own` (a select's registrations on other cases). Dead
    /// waiters met on the way are unlinked.
    mutating func hasLiveWaiter(otherThan own: Waker) -> Bool {
        var node = head
        while let n = node {
            node = n.next
            let w = n.waker.unsafelyUnwrapped
            if !w.isPending {
                remove(n)
            } else if !w.isSameWait(as: own) {
                return true
            }
        }
        return false
    }
}
