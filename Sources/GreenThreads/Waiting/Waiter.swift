// Waiter.swift: a parked operation (Go's sudog), kept in a `WaiterList`
// (WaiterList.swift) by channels and the Sync primitives.
//
// A waiter records the wait (its thread, unretained, and the ticket), a
// pointer to the value it offers or expects, the outcome its claimer writes
// and the intrusive list links.
//
// Both the waiter and its list are deliberately non-generic. Channel code
// that is generic over the element type runs unspecialized when called from
// another module, and there every use of a generic type such as
// `WaiterList<Node<Element>>` costs a runtime metadata lookup, tens of
// nanoseconds: as much as the rest of a buffered send. A waiter therefore
// carries the value as a raw pointer into its own thread's stack, as Go's
// `sudog.elem` does: only the code at the two ends of a hand-off knows the
// type.
//
// ## Where a waiter lives
//
// On the waiting thread's own stack (`Waiter.withTemporary`), not on the
// heap. A green thread's stack never moves, and the operation that queued
// a waiter cannot return before the waiter is out of every queue (a
// claimer dequeues it; a wait that ended otherwise unlinks it itself). So
// the stack frame outlives every use of the waiter, and a wait costs no
// allocation and no reference counting: the list links, the queue heads and
// the waiter's reference to its thread are plain pointers. `withTemporary`
// checks the rule on the way out. (Go must keep sudogs on the heap, with a
// per-P cache, because goroutine stacks move; stackful green threads need
// neither.)
//
// Rejected: a heap `Waiter` class with strong links. Each wait would cost an
// allocation, and every link, queue head and thread reference an atomic
// retain/release pair: a third of the instructions of a channel round trip.
//
// ## Ownership of a waiter
//
// A waiter moves through three owners, and its fields belong to exactly
// one of them at a time:
//
// 1. Its *waiting thread*, which fills it in (the value it offers, if it
//    sends; the wait it belongs to) while holding the queue's lock, before
//    any claimer can see it.
// 2. The *queue's lock* (a channel's or a primitive's SpinLock) while it is
//    queued. Anyone holding that lock may unlink it.
// 3. Whoever wins its claim (see `claim`). A channel claims a waiter only
//    while dequeuing it under the queue lock, so from then on the waiter is
//    in no queue and the claimer alone may write its result fields. The
//    claimer then calls `resume`, whose release (the fiber's run-state CAS
//    or the futex word) hands the fields back to the waiting thread. The
//    claimer must not touch the waiter after `resume`: the waiting thread
//    may already have returned and its stack frame be gone.
//
// A waiter whose wait ended some other way (cancellation, a timeout, another
// select case) stays queued until its own thread, or a channel operation
// that finds its claim dead, unlinks it under the queue lock. The thread of
// a plain send, receive or Sync wait does so in `Park.waitQueued(_:lock:...)`
// (WaiterList.swift), a select in its step 5 (Select.swift).

/// One green thread or OS thread parked in a channel operation (a plain
/// `send`/`receive`, or one case of a `select`), or in a Sync primitive.
/// Always used through a `WaiterRef` to the waiting thread's stack.
///
/// A select queues one waiter per channel case, all for the same wait, so
/// at most one of them can ever be claimed.
///
/// `@usableFromInline` (like `WaiterList`): the channel operations that
/// complete without waiting are specialized in client code, and they
/// dequeue and fill in parked counterparts.
@usableFromInline
struct Waiter {
    /// How the wait ended, written by the claimer before `resume`.
    @usableFromInline
    enum Outcome: UInt8 {
        case waiting    // not claimed (yet)
        case completed  // a value moved (sent or received), or a mutex was
                        // handed over (GreenMutex's starvation mode)
        case closed     // the channel was closed: nothing moved
    }

    /// The waiting thread and its wait's ticket (see `Waker`). Unretained:
    /// the thread is parked in the operation that queued this waiter, so it
    /// outlives every access a claimer makes before `resume`.
    var target: Unmanaged<WaitTarget>?
    var ticket: UInt64 = 0
    /// Channels: the waiting thread's value slot, typed by the channel. A
    /// parked sender's holds its value (the receiver copies it out); a
    /// parked receiver's is uninitialized until a sender fills it in.
    /// Either way it lives on the waiting thread's stack (or in its select
    /// case), which stays put while it waits.
    @usableFromInline var elem: UnsafeMutableRawPointer?
    @usableFromInline var outcome = Outcome.waiting
    var isQueued = false
    /// GreenMutex: when the thread first queued (monotonic ns), kept across
    /// re-queues so it notices that it is starving.
    var queuedAt: Int64 = 0
    var next: WaiterRef?
    var prev: WaiterRef?

    /// Runs `body` with a fresh waiter on the caller's stack. The waiter
    /// must be out of every queue when `body` returns (every operation
    /// unlinks its waiter before returning; `WaiterList` checks on reuse).
    @inline(__always)
    static func withTemporary<R, E: Error>(_ body: (WaiterRef) throws(E) -> R) throws(E) -> R {
        try withTemporary(count: 1, body)
    }

    /// `count` fresh waiters in a row on the caller's stack (a select's
    /// cases), under the same rule.
    @inline(__always)
    static func withTemporary<R, E: Error>(count: Int, _ body: (WaiterRef) throws(E) -> R) throws(E) -> R {
        try withUnsafeTemporaryAllocation(of: Waiter.self, capacity: count) { (buffer) throws(E) -> R in
            let base = buffer.baseAddress.unsafelyUnwrapped
            base.initialize(repeating: Waiter(), count: count)
            // The frame is about to go: a waiter still linked would leave a
            // dangling pointer in some queue.
            defer {
                for i in 0..<count {
                    precondition(!base[i].isQueued, "GreenThreads: a waiter left its operation still queued")
                }
            }
            return try body(base)
        }
    }
}

/// A waiter on some thread's stack (see the file header).
@usableFromInline
typealias WaiterRef = UnsafeMutablePointer<Waiter>

extension UnsafeMutablePointer where Pointee == Waiter {
    /// Binds this waiter to `waker`'s wait (parked with `Park.waitQueued`),
    /// under the queue's lock, before any claimer can see it.
    @inline(__always)
    func attach(_ waker: UnownedWaker) {
        pointee.target = Unmanaged.passUnretained(waker.target)
        pointee.ticket = waker.ticket
        pointee.outcome = .waiting
    }

    /// Wins this wait's claim without resuming the waiter. On success the
    /// caller must call `resume` exactly once, after writing the results.
    ///
    /// A channel delivering a value must not write the receiver's slot
    /// before it knows the receiver is still waiting (it may have been
    /// cancelled, timed out, or have been taken by another case of its
    /// select), and must not resume it before the slot holds the value.
    /// So: claim, write, resume.
    @inline(__always)
    func claim() -> Bool {
        let ticket = pointee.ticket
        // Acquiring (in tryClaim): we also see what the waiter wrote
        // before queueing.
        return pointee.target.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.tryClaim(ticket) }
    }

    /// Resumes a waiter whose claim the caller won. Never under a SpinLock:
    /// readying a green thread may wake a sleeping worker (a futex call).
    /// The waiter is the waiting thread's again from the first instruction
    /// of this call: nothing may touch it afterwards.
    @usableFromInline
    func resume() {
        resume(.notified)
    }

    /// `resume` with a cause other than `.notified`.
    @inline(__always)
    func resume(_ cause: WakeCause) {
        pointee.target.unsafelyUnwrapped._withUnsafeGuaranteedRef { $0.resume(cause) }
    }
}
