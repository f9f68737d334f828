// WaitTarget.swift: the claim that lets exactly one party end a wait.
//
// A `WaitTarget` is what waits (a green thread's `Fiber`, or a
// `ThreadWaiter` for a plain OS thread). Its `claim` word is the whole
// arbitration between the parties that may end a wait (Park.swift):
//
//  * even: not waiting, or the current wait is already claimed;
//  * odd: armed with that ticket. The waiter arms a fresh ticket per wait.
//    Whoever moves the word from the ticket to ticket+1 (one CAS) owns the
//    wake: it writes `cause`, then resumes the thread, exactly once. The
//    waiter's own `disarm` is the same CAS, for a wait that ended before it
//    slept (its event already happened, or an OS thread's timeout).
//
// Tickets only increase, so a waker from an earlier wait (a stale timer, a
// losing select case) can never match again: it needs no removal, only
// its one failed CAS.
//
// Three kinds of waker carry a ticket. `Waker` holds its target strongly:
// for a party that may outlive the wait (a timer entry, the runtime's
// cancellation). `UnownedWaker` holds it unretained: for a queue that drops
// its entry before the wait can end some other way (a joiner slot, see
// `Park.waitQueued`), so a park costs no retain/release pair. A queued
// `Waiter` (Waiter.swift) records target and ticket itself, unretained, on
// the same rule.
//
// A plain OS thread's `ThreadWaiter` blocks on a futex word (`gt_parker`)
// and handles its own deadline with the futex timeout. Its resume holds a
// reference across the unpark: the blocked thread may return, and free the
// waiter, as soon as the word changes, and queued waiters reach it
// unretained.

import CContext
import Synchronization

/// Why a wait ended. Written by whoever claimed the wait, read by the waiter
/// after it resumes (the resume path orders the two).
enum WakeCause: UInt8 {
    case notified   // the event it waited for happened
    case timedOut   // its deadline passed first
    case cancelled  // JoinHandle.cancel, the runtime shutting down, or a
                    // cancelled cancel scope (Deadline.swift)
    case deadlineExceeded  // the deadline of an enclosing scope passed
    case deadlock   // an OS thread's wait that can never end (RuntimeError.deadlock)
}

extension WakeCause {
    /// Throws the error a wait that ended this way reports to its caller:
    /// `CancellationError` or `DeadlineExceeded`. Returns for `.notified`
    /// and `.timedOut` (a call's own timeout, which it reports its own
    /// way) and for `.deadlock`, which each caller reports itself.
    @inline(__always)
    func throwIfInterrupted() throws {
        switch self {
        case .cancelled: throw CancellationError()
        case .deadlineExceeded: throw DeadlineExceeded()
        case .notified, .timedOut, .deadlock: return
        }
    }

    /// For a wait with no timeout of its own, whose only success is
    /// `.notified`: throws `DeadlineExceeded` for a passed scope deadline
    /// and `CancellationError` for every other end (a cancel, `.deadlock`).
    @inline(__always)
    func throwUnlessNotified() throws {
        switch self {
        case .notified: return
        case .deadlineExceeded: throw DeadlineExceeded()
        case .cancelled, .timedOut, .deadlock: throw CancellationError()
        }
    }
}

/// Something that can wait: a green thread, or a plain OS thread blocked in
/// a runtime call.
///
/// Every wait is *armed* with a fresh odd ticket. Anything that may end the
/// wait (a joined thread finishing, a timer, cancellation, a channel or a
/// select) holds a waker naming that ticket and must win a CAS from
/// the ticket to ticket+1 before resuming the waiter. So exactly one of
/// them resumes it, and a waker left behind from an earlier wait (a stale
/// timer, a losing select case) fails its CAS and does nothing.
@usableFromInline
class WaitTarget: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `claim` is atomic, and `cause` is written
    // only by the winner of the claim before it resumes the waiter, and read
    // by the waiter after it resumed; the resume (a fiber's run-state
    // release/acquire, or the futex) orders the two.
    /// Odd: armed with that ticket. Even: not waiting (or already claimed).
    let claim = Atomic<UInt64>(0)
    /// Written by the claimer before it resumes the waiter.
    @exclusivity(unchecked) final var cause: WakeCause = .notified

    /// Arms a new wait. Only the waiter itself calls this, while not armed.
    @inline(__always)
    final func arm() -> UInt64 {
        let ticket = (claim.load(ordering: .relaxed) | 1) &+ 2
        claim.store(ticket, ordering: .releasing)
        return ticket
    }

    /// Withdraws the waiter's own armed ticket (a wait that ended without
    /// sleeping). Returns false if a waker claimed it first, in which case
    /// that waker's resume is on its way and must be consumed.
    @inline(__always)
    final func disarm(_ ticket: UInt64) -> Bool {
        claim.compareExchange(
            expected: ticket, desired: ticket &+ 1,
            successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring
        ).exchanged
    }

    /// The ticket currently armed, if the target is waiting.
    final var armedTicket: UInt64? {
        let c = claim.load(ordering: .acquiring)
        return c & 1 == 1 ? c : nil
    }

    /// Wins the wait armed with `ticket`, if nothing else ended it first:
    /// the one CAS every waker (strong, unowned, or a queued waiter) makes.
    /// Acquiring: the claimer sees what the waiter wrote before arming;
    /// releasing: pairs with the waiter's own `disarm`.
    @inline(__always)
    final func tryClaim(_ ticket: UInt64) -> Bool {
        claim.compareExchange(
            expected: ticket, desired: ticket &+ 1,
            successOrdering: .acquiringAndReleasing, failureOrdering: .relaxed
        ).exchanged
    }

    /// Resumes the waiter after a won claim: records why, then makes it
    /// runnable. Nothing may touch the target afterwards.
    @inline(__always)
    final func resume(_ cause: WakeCause) {
        self.cause = cause
        resumeFromWait()
    }

    /// Makes the claimed waiter runnable again. Called exactly once per
    /// successful claim.
    func resumeFromWait() {
        fatalError("subclass responsibility")
    }
}

/// A claim on one specific wait of one target.
struct Waker: Sendable {
    let target: WaitTarget
    let ticket: UInt64

    /// Ends the wait if nothing else ended it first. Returns whether it did.
    @discardableResult
    @inline(__always)
    func wake(_ cause: WakeCause = .notified) -> Bool {
        guard target.tryClaim(ticket) else { return false }
        target.resume(cause)
        return true
    }

    /// Whether this wait is still open (nobody claimed it yet).
    var isPending: Bool { target.claim.load(ordering: .acquiring) == ticket }
}

/// A claim on one wait that does not own its target: what a waiter that
/// records its target unretained needs (channel and Sync waiters, see
/// Waiter.swift; joiners), handed out by `Park.waitQueued` without the
/// retain and release a `Waker` costs (two atomic operations per park). Valid only
/// while the wait is open: whoever keeps one must drop it before the wait
/// can end some other way, as a waiter queue does (a claimer dequeues the
/// waiter; any other ending unlinks it first).
struct UnownedWaker {
    /// Unmanaged rather than `unowned(unsafe)`: a call through the latter
    /// still retains and releases the target around it.
    private let ref: Unmanaged<WaitTarget>
    let ticket: UInt64

    init(target: WaitTarget, ticket: UInt64) {
        ref = Unmanaged.passUnretained(target)
        self.ticket = ticket
    }

    var target: WaitTarget { ref.takeUnretainedValue() }

    /// Wins this wait's claim without resuming the waiter: the target
    /// cannot resume some other way, so it stays alive until `resume`,
    /// which the caller must then call exactly once. Only while the waker
    /// is still reachable by its waiter's clean-up (under the lock both
    /// take) is the target sure to be alive for this call.
    @inline(__always)
    func claim() -> Bool {
        ref._withUnsafeGuaranteedRef { $0.tryClaim(ticket) }
    }

    /// Resumes a waiter whose claim the caller won. Nothing may touch the
    /// target afterwards: it may be running, or gone, from the first
    /// instruction of the resume.
    @inline(__always)
    func resume(_ cause: WakeCause = .notified) {
        ref._withUnsafeGuaranteedRef { $0.resume(cause) }
    }

    /// Whether this is the same wait as `other`.
    @inline(__always)
    func isSameWait(as other: UnownedWaker) -> Bool {
        ref.toOpaque() == other.ref.toOpaque() && ticket == other.ticket
    }
}

/// A plain OS thread blocked in a runtime call: parks on a futex.
final class ThreadWaiter: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `parker` never changes after init, and
    // the futex word it points at is only touched through the atomic
    // gt_parker_park / gt_parker_unpark calls.
    private let parker: UnsafeMutablePointer<gt_parker>

    override init() {
        parker = .allocate(capacity: 1)
        gt_parker_init(parker)
        super.init()
    }

    deinit { parker.deallocate() }

    override func resumeFromWait() {
        // The blocked thread may return (and free us) as soon as the parker
        // word changes, while the unpark is still in progress; channel
        // waiters reach us unretained. Hold a reference across it.
        let keep = Unmanaged.passRetained(self)
        gt_parker_unpark(parker)
        keep.release()
    }

    /// Blocks until the armed ticket is claimed or the deadline (monotonic
    /// ns) passes. On timeout it claims the ticket itself.
    func block(ticket: UInt64, deadline: Int64?) -> WakeCause {
        while true {
            let timeout: Int64
            if let deadline {
                timeout = deadline - gt_now_ns()
                if timeout <= 0 {
                    if disarm(ticket) { return .timedOut }
                    // A waker won the race; its unpark is on its way.
                    while !gt_parker_park(parker, -1) {}
                    return cause
                }
            } else {
                timeout = -1
            }
            if gt_parker_park(parker, timeout), claim.load(ordering: .acquiring) != ticket {
                return cause
            }
        }
    }
}
