// Deadline.swift: deadline and cancel scopes, and how they end the waits
// inside them.
//
// `withDeadline(after:)` and `withCancelScope` (API/Scopes.swift) bound a
// region of one thread's code: every interruptible wait the thread makes
// inside it (the `cancellable` waits of Park.swift: channels, select, join,
// sleep, the Sync primitives, sockets) throws `DeadlineExceeded` once the
// deadline passes, or `CancellationError` once the scope is cancelled.
// Scopes nest; the earliest deadline of the active ones rules.
//
// ## The problem
//
// A scope must end a wait that is already parked when its deadline passes
// (or someone cancels it), within a millisecond or so; a wait begun after
// that must end at once; and a wait outside the scope must never be hit by
// it, even when the cancel races with the scope's end. Meanwhile a wait
// with no scope active, the hot path of every channel round trip, may pay
// one load and one compare for all this, and a wait inside a scope little
// more (the `deadline` benchmark: a receive inside a scope costs at most
// 1.5x a plain one).
//
// ## Rejected designs
//
//  * A timer per wait for the scope's deadline (effective deadline =
//    min(the wait's, the scope's)). Every wait inside a scope would pay a
//    timer heap insertion, a reference count and a stale entry, several
//    times the rest of a channel hand-off. Plain OS threads do work this
//    way (below): their futex takes the deadline for free.
//  * A thread-wide "interrupted" flag. It cannot tell which scope tripped,
//    so leaving the inner of two scopes could not clear it correctly.
//  * Waking a thread from `cancel()` without knowing the scope is still
//    active: a cancel racing with the scope's end could end a wait that
//    belongs to the code after the scope.
//
// ## The design
//
// Each thread with an active scope has one `WaitScopes` (a green thread's
// `Fiber.scopes`, a plain OS thread's thread-local slot), attached by its
// outermost scope and detached by it. A fiber keeps its `WaitScopes` for
// its next scope (`Fiber.spareScopes`), and the `WaitScopes` keeps a
// deadline node whose timer was withdrawn unfired (`spareNode`): a
// deadline scope around a wait that succeeds allocates nothing once warm.
// A withdrawn node can be armed again safely: its old heap entry holds the
// old ticket, whose claim fails. It holds `trips`: how many active
// scopes are *tripped* (cancelled scopes count `cancelUnit` each, expired
// deadline scopes one each), and the earliest active deadline.
//
// A scope that must be able to trip has a `ScopeNode`: every cancel scope,
// and a green thread's deadline scope whose deadline is earlier than the
// ones around it (a later one could never fire first). Its deadline is a
// single timer on the current worker's `TimerHeap`, armed once for the
// whole scope: the node is itself a `WaitTarget` with one ticket, so the
// heap fires it like any other wait, and the scope's end disarms it (lazy
// deletion, `noteStale`, as for a wait's timer). A deadline already past
// when the scope begins trips the node at once, with no timer.
//
// Tripping (`ScopeNode.trip`, from the timer or `CancelScope.cancel`), under
// the node's lock, only while the node's scope is active (`owner` set):
//
//  1. `trips += kind` (seq_cst).
//  2. Read the thread's `cancellableWait` and armed ticket (seq_cst / acquire)
//     and win the claim of that wait. The wait is inside the scope: the
//     scope cannot end while we hold its node's lock, and only the thread
//     itself ends it.
//  3. After unlocking, resume the claimed wait with `.cancelled` or
//     `.deadlineExceeded` (never under a spin lock: it may wake a worker).
//
// The waiter (Park.swift step 1 and 6) checks `trips` before it publishes
// anything, and again after its fence: it stored `cancellableWait` and
// its ticket, then reads `trips`; the tripper stored `trips`, then reads
// those two. This is the Dekker pairing of `RuntimeCore.cancel`, so either
// the waiter sees the trip and ends its own wait, or the tripper sees the
// ticket and ends it. A scope's end (`ScopeNode.leave`) takes the node's
// lock, subtracts its trip if it tripped, and clears `owner`: a later
// `cancel()` or timer finds no owner and does nothing.
//
// Trips are level-triggered, as in Trio: while a tripped scope is active,
// every interruptible wait inside it throws at once, so code that catches
// the error inside the scope and waits again cannot hang. The error
// propagates out of every scope: `withDeadline` and `withCancelScope`
// rethrow, so an inner scope never swallows the error of an outer one
// (Go's `ctx.Err()` returned up the stack).
//
// ## Plain OS threads
//
// An OS thread has no timer heap, so its deadline scopes have no node: its
// waits (Park.waitOnThread) pass min(the wait's deadline, `deadline`) to
// the futex and report `.deadlineExceeded` when the scope's was the earlier.
// For a cancel scope to find an OS thread's wait, the thread waits on the
// one `ThreadWaiter` of its `WaitScopes` while any scope is active, with
// `threadCancellableWait` standing in for the fiber's `cancellableWait`.
//
// | operation                                     | ordering | pairs with                       |
// |-----------------------------------------------|----------|----------------------------------|
// | trip: trips += kind                           | seq_cst  | the waiter's fence, then load    |
// | trip: load cancellableWait, then armed ticket | seq_cst  | the waiter's stores, then fence  |
// | leave: trips -= kind, owner = nil             | (lock)   | trip's check of `owner`          |

import CContext
import Synchronization

/// The active scopes of one thread (see the file header).
final class WaitScopes: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `deadline`, `depth` and `spareNode` are
    // touched only by the owning thread; `trips` and
    // `threadCancellableWait` are atomic; `target` never changes.

    /// Trips of one cancelled scope; an expired deadline scope counts 1.
    static let cancelUnit = 1 << 32

    /// The thread the scopes interrupt: its fiber, or an OS thread's waiter.
    /// Unowned: a fiber keeps its `WaitScopes` (`Fiber.spareScopes`), and an
    /// OS thread's waiter is `threadWaiter`.
    unowned(unsafe) let target: WaitTarget
    /// A plain OS thread's waiter (also `target`); nil on a green thread.
    let threadWaiter: ThreadWaiter?
    /// An OS thread's `Fiber.cancellableWait`.
    let threadCancellableWait = Atomic<Bool>(false)
    /// Tripped active scopes (file header).
    let trips = Atomic<Int>(0)
    /// Earliest deadline of the active deadline scopes (`Park.now()` ns),
    /// `Int64.max` if none. Owner only.
    @exclusivity(unchecked) var deadline: Int64 = .max
    /// Active scopes. Owner only.
    @exclusivity(unchecked) var depth = 0
    /// A deadline node to reuse (file header). Owner only.
    @exclusivity(unchecked) private var spareNode: ScopeNode?

    private init(fiber: Fiber) {
        target = fiber
        threadWaiter = nil
    }

    private init(thread waiter: ThreadWaiter) {
        target = waiter
        threadWaiter = waiter
    }

    /// Why a wait inside the scopes must end at once, if it must.
    @inline(__always)
    var interruption: WakeCause? {
        let t = trips.load(ordering: .relaxed)
        if t == 0 { return nil }
        return t >= Self.cancelUnit ? .cancelled : .deadlineExceeded
    }

    /// The calling thread's scopes, if any scope is active.
    static var current: WaitScopes? {
        if let fiber = GreenThread.currentFiber {
            return fiber.scopes?.takeUnretainedValue()
        }
        return gt_current_scopes().map { Unmanaged<WaitScopes>.fromOpaque($0).takeUnretainedValue() }
    }

    /// `enter()` on the green thread running `fiber`. Unmanaged: the fiber
    /// keeps its scopes (`spareScopes`), so the caller needs no reference.
    @inline(__always)
    static func enter(fiber: Fiber) -> Unmanaged<WaitScopes> {
        let scopes: Unmanaged<WaitScopes>
        if let s = fiber.scopes {
            scopes = s
        } else if let spare = fiber.spareScopes {
            scopes = Unmanaged.passUnretained(spare)
            fiber.scopes = scopes
        } else {
            let s = WaitScopes(fiber: fiber)
            fiber.spareScopes = s
            scopes = Unmanaged.passUnretained(s)
            fiber.scopes = scopes
        }
        scopes._withUnsafeGuaranteedRef { $0.depth += 1 }
        return scopes
    }

    /// A deadline node for a new scope of this green thread: the spare one
    /// if there is one (file header).
    @inline(__always)
    func takeNode() -> ScopeNode {
        if let spare = spareNode {
            spareNode = nil
            spare.reuse(in: self)
            return spare
        }
        return ScopeNode(kind: .deadline, in: self)
    }

    /// Ends the scope of a node from `takeNode`, keeping it if reusable.
    @inline(__always)
    func endNode(_ node: ScopeNode) {
        node.leave()
        if node.isReusable { spareNode = node }
    }

    /// Begins a scope on the calling thread: its `WaitScopes` (created for
    /// the outermost scope) with `depth` counting this one. Balance with
    /// `leave()`.
    static func enter() -> WaitScopes {
        let scopes: WaitScopes
        if let fiber = GreenThread.currentFiber {
            return enter(fiber: fiber).takeUnretainedValue()
        } else if let raw = gt_current_scopes() {
            scopes = Unmanaged<WaitScopes>.fromOpaque(raw).takeUnretainedValue()
        } else {
            scopes = WaitScopes(thread: ThreadWaiter())
            gt_set_current_scopes(Unmanaged.passRetained(scopes).toOpaque())
        }
        scopes.depth += 1
        return scopes
    }

    /// Ends a scope begun with `enter()`; the outermost one detaches the
    /// scopes from the thread.
    func leave() {
        depth -= 1
        if depth > 0 { return }
        if threadWaiter == nil {
            // The fiber keeps us (`spareScopes`) for its next scope.
            unsafeDowncast(target, to: Fiber.self).scopes = nil
        } else {
            gt_set_current_scopes(nil)
            Unmanaged.passUnretained(self).release()
        }
    }

    /// Step 2 of tripping: wins the claim of the thread's current wait if
    /// it is an interruptible one. Returns the target to resume.
    func claimCurrentWait() -> WaitTarget? {
        let interruptible: Bool
        if threadWaiter == nil {
            interruptible = unsafeDowncast(target, to: Fiber.self).cancellableWait.load(ordering: .sequentiallyConsistent)
        } else {
            interruptible = threadCancellableWait.load(ordering: .sequentiallyConsistent)
        }
        guard interruptible, let ticket = target.armedTicket, target.tryClaim(ticket) else { return nil }
        return target
    }
}

/// A scope that can trip: a cancel scope, or a green thread's deadline
/// scope with its timer (see the file header). Itself the target of that
/// timer, armed once.
final class ScopeNode: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `owner`, `tripped` and `cancelRequested`
    // are guarded by `lock`; `timers` and `timerTicket` are written once by
    // the owner before the timer is published, and read by it alone.

    enum Kind: Int {
        case cancel = 4294967296  // WaitScopes.cancelUnit
        case deadline = 1
    }

    let kind: Kind
    private let lock = SpinLock()
    /// The scopes this node's scope is active in; nil once it ended.
    @exclusivity(unchecked) private var owner: WaitScopes?     // Guarded by: lock
    @exclusivity(unchecked) private var tripped = false         // Guarded by: lock
    @exclusivity(unchecked) private var cancelRequested = false  // Guarded by: lock
    /// The heap holding this node's timer, if it has one. Owner only.
    @exclusivity(unchecked) private var timers: Unmanaged<TimerHeap>?
    @exclusivity(unchecked) private var timerTicket: UInt64 = 0

    init(kind: Kind, in scopes: WaitScopes) {
        self.kind = kind
        owner = scopes
        super.init()
    }

    /// Makes a spare deadline node (see `isReusable`) the node of a new
    /// scope. Nothing else can reach it meanwhile: its timer's old ticket
    /// is dead, and no `CancelScope` refers to a deadline node.
    func reuse(in scopes: WaitScopes) {
        owner = scopes
        tripped = false
        timers = nil
    }

    /// Whether the scope ended with its timer withdrawn unfired, so that
    /// the node may serve another deadline scope (`reuse`).
    @exclusivity(unchecked) private(set) var isReusable = false

    /// Arms the deadline timer on the calling green thread's worker, or
    /// trips at once if `deadline` is not after `now`.
    func startTimer(deadline: Int64, now: Int64, worker: Worker) {
        isReusable = false
        if deadline <= now {
            trip(.deadline)
            return
        }
        timerTicket = arm()
        timers = Unmanaged.passUnretained(worker.timers)
        worker.timers.add(deadline: deadline, waker: Waker(target: self, ticket: timerTicket))
        if !worker.clock.isVirtual { worker.idle.timerAdded(deadline: deadline) }
    }

    /// The timer fired (or shutdown drained it: a cancellation).
    override func resumeFromWait() {
        trip(cause == .timedOut ? .deadline : .cancel)
    }

    /// Whether `cancel()` was called on the scope (even after it ended).
    var isCancelRequested: Bool { lock.withLock { cancelRequested } }

    /// Trips the scope if it is still active: ends the thread's current
    /// interruptible wait and every later one until the scope ends.
    func trip(_ how: Kind) {
        var claimed: WaitTarget?
        lock.lock()
        if how == .cancel { cancelRequested = true }
        if let owner, !tripped {
            tripped = true
            owner.trips.add(kind.rawValue, ordering: .sequentiallyConsistent)
            claimed = owner.claimCurrentWait()
        }
        lock.unlock()
        claimed?.resume(kind == .cancel ? .cancelled : .deadlineExceeded)
    }

    /// The scope ends: from here on a trip does nothing.
    func leave() {
        if let timers, disarm(timerTicket) {
            timers._withUnsafeGuaranteedRef { $0.noteStale() }
            if kind == .deadline {
                // Withdrawn unfired, and only its timer trips a deadline
                // node once armed: nobody else can be in `trip`.
                owner = nil
                isReusable = true
                return
            }
        }
        lock.lock()
        if tripped, let owner { owner.trips.subtract(kind.rawValue, ordering: .relaxed) }
        owner = nil
        lock.unlock()
    }
}
