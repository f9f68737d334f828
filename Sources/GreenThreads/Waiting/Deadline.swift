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
//  * A timer per scope, inserted when the scope begins and withdrawn when
//    it ends. Nearly every scope ends long before its deadline, so each
//    would pay a heap insertion under the heap's lock, a retain, a
//    withdrawal CAS and a share of the purge of the stale entries it
//    leaves: more than the channel round trip it guards.
//  * Moving a live entry in place (decrease-key). The heap would have to
//    keep each node's index up to date on every sift, for every timer, to
//    serve the one case (a deadline earlier than the entry's) that a fresh
//    entry serves as well.
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
// its next scope (`Fiber.spareScopes`), and the `WaitScopes` keeps one
// deadline node for its next deadline scope (`spare`): a deadline
// scope around a wait that succeeds allocates nothing once warm. It holds
// `trips`: how many active scopes are *tripped* (cancelled scopes count
// `cancelUnit` each, expired deadline scopes one each), and the earliest
// active deadline.
//
// A scope that must be able to trip has a `ScopeNode`: every cancel scope,
// and a green thread's deadline scope whose deadline is earlier than the
// ones around it (a later one could never fire first). A deadline already
// past when the scope begins trips the node at once.
//
// ## A deadline node's timer: one lazy entry (Go's "timer modified later")
//
// A deadline node has at most one live entry in a worker's `TimerHeap`,
// and it outlives the scope that inserted it: the node is itself a
// `WaitTarget`, the entry a `Waker` for the node's current ticket. The
// node records, under its lock, the deadline of the scope it serves
// (`deadline`, meaningful while `owner` is set) and that of its live
// entry (`entryDeadline`, `.max` for none). The entry may fire earlier
// than the scope's deadline, never later:
//
//  1. A scope begins on the node (`begin`). If the live entry is due no
//     later than the scope's deadline, the heap is not touched: the scope
//     only records its deadline. Otherwise (no entry, or a later one) the
//     node withdraws the old entry (`disarm`, `noteStale`) and inserts a
//     fresh one at the scope's deadline with a new ticket.
//  2. The scope ends (`leave`): `owner` is cleared, the entry stays.
//  3. The entry fires (`resumeFromWait`, `.timedOut`). Under the lock: if
//     the node is armed again, a newer entry replaced this one, which was
//     already claimed when the node re-armed: it does nothing. Otherwise
//     the node has no entry any more, and with an active, untripped scope
//     it trips it if the scope's deadline has passed, else inserts the
//     entry again at that deadline; with no active scope it stops there.
//     So a stale entry never trips a later scope whose deadline has not
//     passed, nor reaches a wait outside every scope (no `owner`).
//  4. A node that is not kept (one for a scope nested in the spare's, the
//     spare of a `WaitScopes` that is freed) withdraws its entry, so that
//     nothing but a spare node keeps an entry beyond its scope: at most
//     one per `WaitScopes`, and it leaves when it fires.
//
// The benchmark's loop of one-hour scopes inserts once an hour: the scope
// costs two uncontended lock pairs on its node and no heap access. A
// tight deadline after a long one (step 1's fresh entry) fires on time.
// The entry of a node whose thread migrated stays in the first worker's
// heap, served as any timer there is: by that worker, or by one out of
// work, which fires every worker's due timers.
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
// | begin, leave, fire: deadline, entryDeadline   | (lock)   | each other                       |
// | fire: node's claim (its entry's ticket)       | acq_rel  | begin's and withdraw's disarm    |

import CContext
import Synchronization

/// The active scopes of one thread (see the file header).
final class WaitScopes: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the fields marked "Owner only" are
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
    /// The deadline node kept for the next deadline scope (file header),
    /// owned: released in `deinit`. Unmanaged, so that taking it for a
    /// scope and giving it back costs no reference count. Owner only.
    @exclusivity(unchecked) private var spare: Unmanaged<ScopeNode>?
    /// Whether a scope is using `spare`. Owner only.
    @exclusivity(unchecked) private var spareInUse = false
    /// The last span `deadline(after:from:)` converted, and its
    /// nanoseconds: a thread sets the same timeout scope after scope, and
    /// splitting a `Duration` is a 128-bit division, which cost as much as
    /// the rest of the scope's set-up. Owner only.
    @exclusivity(unchecked) private var lastSpan: Duration = .zero
    @exclusivity(unchecked) private var lastSpanNanoseconds: Int64 = 0

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
    /// if it is free (file header). Balance with `endNode`.
    @inline(__always)
    func takeNode() -> Unmanaged<ScopeNode> {
        if let spare, !spareInUse {
            spareInUse = true
            return spare
        }
        return takeNewNode()
    }

    /// A node for a scope nested in the one using the spare (or the first):
    /// owned by the scope, until `endNode` keeps or releases it.
    @inline(never)
    private func takeNewNode() -> Unmanaged<ScopeNode> {
        let node = Unmanaged.passRetained(ScopeNode(kind: .deadline))
        if spare == nil {
            spare = node
            spareInUse = true
        }
        return node
    }

    /// Ends the scope of a node from `takeNode`: the spare stays, live
    /// entry and all; another withdraws its entry and goes (file header,
    /// step 4).
    @inline(__always)
    func endNode(_ node: Unmanaged<ScopeNode>) {
        node._withUnsafeGuaranteedRef { $0.leave() }
        if node.toOpaque() == spare?.toOpaque() {
            spareInUse = false
        } else {
            node._withUnsafeGuaranteedRef { $0.withdraw() }
            node.release()
        }
    }

    /// The spare deadline node, if any (tests).
    var spareNode: ScopeNode? { spare?.takeUnretainedValue() }

    /// `Park.deadline(after:from:)`, remembering the last span converted.
    @inline(__always)
    func deadline(after span: Duration, from now: Int64) -> Int64 {
        if span != lastSpan {
            lastSpan = span
            lastSpanNanoseconds = Park.deadline(after: span, from: 0)
        }
        // As Park.deadline: negative spans end at `now`, the rest saturate.
        let ns = lastSpanNanoseconds
        let d = now.addingReportingOverflow(ns)
        return ns == .max || d.overflow ? .max : d.partialValue
    }

    deinit {
        // The fiber is gone: the spare's entry would only wait in the heap,
        // holding the node, until it fires.
        if let spare {
            spare._withUnsafeGuaranteedRef { $0.withdraw() }
            spare.release()
        }
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
/// scope. A deadline node is also the target of its one lazy timer entry,
/// which outlives its scopes (see the file header).
final class ScopeNode: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every field but `kind` is guarded by
    // `lock`; the claim word is atomic.

    enum Kind: Int {
        case cancel = 4294967296  // WaitScopes.cancelUnit
        case deadline = 1
    }

    let kind: Kind
    private let lock = SpinLock()
    /// The scopes this node's scope is active in; nil between scopes.
    /// Unretained: they outlive the scope (the fiber keeps them, an OS
    /// thread's slot holds them until its outermost scope ends), and a
    /// tripper reads it only under the lock, so only while it is set.
    @exclusivity(unchecked) private var owner: Unmanaged<WaitScopes>?  // Guarded by: lock
    @exclusivity(unchecked) private var tripped = false         // Guarded by: lock
    @exclusivity(unchecked) private var cancelRequested = false  // Guarded by: lock
    /// The active scope's deadline, on the runtime's clock; meaningful
    /// while `owner` is set.
    @exclusivity(unchecked) private var deadline: Int64 = .max  // Guarded by: lock
    /// The deadline of the live timer entry, `.max` for none. Never later
    /// than `deadline` while a scope is active and its entry is live.
    @exclusivity(unchecked) private var entryDeadline: Int64 = .max  // Guarded by: lock
    @exclusivity(unchecked) private var entryTicket: UInt64 = 0  // Guarded by: lock
    /// The worker whose heap holds the entry. Unretained: touched only
    /// while the entry is in that heap (a won `disarm`, or its firing),
    /// that is before the runtime's shutdown drained it.
    @exclusivity(unchecked) private var home: Unmanaged<Worker>?  // Guarded by: lock

    /// A deadline node, between scopes until `begin`.
    init(kind: Kind) {
        self.kind = kind
        super.init()
    }

    /// A cancel node, its scope active in `scopes`.
    init(cancelIn scopes: WaitScopes) {
        kind = .cancel
        owner = Unmanaged.passUnretained(scopes)
        super.init()
    }

    /// Begins a deadline scope on the node, on the calling green thread's
    /// `worker` (file header, step 1): trips at once if `deadline` is not
    /// after `now`, and touches the heap only if the live entry (if any)
    /// would fire after `deadline`.
    @inline(__always)
    func begin(in scopes: WaitScopes, deadline: Int64, now: Int64, worker: Unmanaged<Worker>) {
        lock.lock()
        owner = Unmanaged.passUnretained(scopes)
        tripped = false
        self.deadline = deadline
        if deadline > now && entryDeadline <= deadline {
            lock.unlock()
            return
        }
        beginElsewhere(deadline: deadline, now: now, worker: worker)
    }

    /// `begin` when the scope has expired already or needs an earlier
    /// entry. Under the lock, which it drops.
    @inline(never)
    private func beginElsewhere(deadline: Int64, now: Int64, worker: Unmanaged<Worker>) {
        if deadline <= now {
            lock.unlock()
            trip(.deadline)
            return
        }
        var stale: Unmanaged<Worker>?
        // A failed disarm: the old entry is firing; seeing the node armed
        // again, it will do nothing (step 3).
        if entryDeadline != .max, disarm(entryTicket) { stale = home }
        insertEntry(at: deadline, worker: worker)
        lock.unlock()
        stale?._withUnsafeGuaranteedRef { $0.timers.noteStale() }
        worker._withUnsafeGuaranteedRef { if !$0.clock.isVirtual { $0.idle.timerAdded(deadline: deadline) } }
    }

    /// Arms a new ticket and puts its entry in `worker`'s heap. Under the
    /// lock, with no live entry (withdrawn or claimed).
    private func insertEntry(at deadline: Int64, worker: Unmanaged<Worker>) {
        let ticket = arm()
        entryTicket = ticket
        entryDeadline = deadline
        home = worker
        worker._withUnsafeGuaranteedRef { $0.timers.add(deadline: deadline, waker: Waker(target: self, ticket: ticket)) }
    }

    /// The entry fired (file header, step 3), or shutdown drained it (a
    /// cancellation: the scope trips, as its waits are cancelled).
    override func resumeFromWait() {
        let fired = cause
        var claimed: WaitTarget?
        var reinserted: (Unmanaged<Worker>, Int64)?
        lock.lock()
        if armedTicket == nil {
            entryDeadline = .max
            if fired != .timedOut {
                cancelRequested = true
                claimed = tripLocked()
            } else if owner != nil, !tripped, let home,
                      // A closing runtime drains its heaps and cancels its
                      // waits: an entry put back now could outlive the heap.
                      !home._withUnsafeGuaranteedRef({ $0.closing.load(ordering: .relaxed) }) {
                if deadline <= home._withUnsafeGuaranteedRef({ $0.clock.now() }) {
                    claimed = tripLocked()
                } else {
                    insertEntry(at: deadline, worker: home)
                    reinserted = (home, deadline)
                }
            }
        }
        lock.unlock()
        claimed?.resume(kind == .cancel ? .cancelled : .deadlineExceeded)
        if let (worker, deadline) = reinserted {
            worker._withUnsafeGuaranteedRef { if !$0.clock.isVirtual { $0.idle.timerAdded(deadline: deadline) } }
        }
    }

    /// Whether `cancel()` was called on the scope (even after it ended).
    var isCancelRequested: Bool { lock.withLock { cancelRequested } }

    /// Trips the scope if it is still active: ends the thread's current
    /// interruptible wait and every later one until the scope ends.
    func trip(_ how: Kind) {
        lock.lock()
        if how == .cancel { cancelRequested = true }
        let claimed = tripLocked()
        lock.unlock()
        claimed?.resume(kind == .cancel ? .cancelled : .deadlineExceeded)
    }

    /// Steps 1 and 2 of tripping, under the lock; the caller resumes the
    /// wait it returns once it unlocked.
    private func tripLocked() -> WaitTarget? {
        guard let owner, !tripped else { return nil }
        tripped = true
        return owner._withUnsafeGuaranteedRef { owner in
            owner.trips.add(kind.rawValue, ordering: .sequentiallyConsistent)
            return owner.claimCurrentWait()
        }
    }

    /// The scope ends (file header, step 2): from here on a trip does
    /// nothing. A deadline node's entry stays for its next scope.
    @inline(__always)
    func leave() {
        lock.lock()
        if tripped, let owner {
            _ = owner._withUnsafeGuaranteedRef { $0.trips.subtract(kind.rawValue, ordering: .relaxed) }
        }
        owner = nil
        lock.unlock()
    }

    /// Withdraws the live entry of a node between scopes that is not kept
    /// (file header, step 4).
    func withdraw() {
        lock.lock()
        var stale: Unmanaged<Worker>?
        if entryDeadline != .max, disarm(entryTicket) { stale = home }
        entryDeadline = .max
        lock.unlock()
        stale?._withUnsafeGuaranteedRef { $0.timers.noteStale() }
    }

    /// The deadline of the live entry, `.max` for none (tests).
    var liveEntryDeadline: Int64 { lock.withLock { armedTicket == nil ? .max : entryDeadline } }
}
