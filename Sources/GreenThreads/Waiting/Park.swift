// Park.swift: how anything in GreenThreads waits, and how the wait ends.
//
// Every blocking operation (a join, a sleep, a channel or select, a Sync
// primitive, a socket) ends in `Park.wait` or `Park.waitQueued`. On a green
// thread the wait *parks* it: its worker saves its context and runs other
// green threads until something makes it runnable again. On a plain OS
// thread it blocks on a futex.
//
// ## The problem
//
// A wait can end in several ways that race: the event it waits for (a value,
// a permit, a joined thread's end), its deadline, a cancellation, and for a
// select each of its cases. Exactly one of them may resume the thread, once,
// and none may be lost: an event that comes after the thread published its
// waker but before its switch has finished must still wake it, and a
// cancellation that comes just before it parks must still end the wait.
// And a wait is the hot path of every channel round trip, so it may not
// allocate, and should change no reference count.
//
// ## Tickets and wakers (WaitTarget.swift)
//
// Each wait is *armed* with a fresh odd ticket on its `WaitTarget` (the
// fiber, or a `ThreadWaiter`). Everything that may end it holds a waker
// naming that ticket (the event's queue entry, the timer, the runtime's
// cancellation, every case of a select) and must win the CAS of the target's
// `claim` from the ticket to ticket+1 before it writes `cause` and resumes
// the thread. So exactly one party resumes each wait, and a waker left over
// from an earlier wait (a stale timer, a losing select case) holds an old
// ticket and its CAS fails. Channels split the wake into `claim` and
// `resume`, so they can hand the value over between the two (Waiter.swift).
//
// Rejected: removing every other waker when one fires. Each would need the
// lock of every place the wait is registered (a timer heap, several
// channels), on the hot path of every wake; the ticket costs one CAS, and a
// stale waker is dropped lazily where it lives (TimerHeap.swift).
//
// ## Parking a green thread (`parkGreen`)
//
//  1. Cancelled already? A cancellable wait of a cancelled thread returns
//     `.cancelled` at once, before anything is published (and one inside a
//     tripped scope its cause, see below). Otherwise the
//     thread records whether cancellation may end this wait
//     (`cancellableWait`).
//  2. Parking state: `runState = parking`, *before* the wait can be
//     claimed. A wake that arrives while the switch is still saving the
//     context finds `parking` and leaves `wakePending` instead of queueing a
//     half-saved thread; the worker that finishes the switch queues it
//     (Fiber.swift, `Fiber.RunState`).
//  3. Arm: `ticket = fiber.arm()`, the next odd value `(claim | 1) + 2`, so
//     tickets are unique and only increase (releasing store: a claimer's
//     acquiring CAS sees what the waiter wrote before arming, `parking`
//     included). Arming is what makes the wait claimable, before any
//     register step: `RuntimeCore.cancel` and a scope's trip read the armed
//     ticket straight from the fiber. Armed first, a cancel that came in
//     between found the thread still `running` and trapped in `ready()`.
//  4. Register: `register(waker)` publishes the waker (a joiner slot, a
//     channel queue, a poll descriptor). It returns false if the event has
//     already happened; then `disarm(ticket)` withdraws the wait and it
//     returns `.notified` without parking, unless a waker's claim won first:
//     that waker's `ready()` is on its way, so the thread parks to consume
//     it. Queued waiters (channels, Sync, joiners) use `waitQueued`, whose
//     register step gets an `UnownedWaker`: their queue entry is gone before
//     the wait can end, so it needs no reference to the fiber. A `Waiter`
//     in a `WaiterList` parks through the overload in WaiterList.swift,
//     which queues it under the list's lock and unlinks it afterwards.
//  5. Timer: with a deadline, a strong `Waker` goes into the *current*
//     worker's `TimerHeap` (it outlives the wait: lazy deletion), and an
//     idle worker that would sleep past it is told (`Idle.timerAdded`). A
//     wait that ends some other way reports its stale entry (`noteStale`).
//  6. Cancel (Dekker): `RuntimeCore.cancel` stores `cancelled` and then
//     reads `cancellableWait` and the armed ticket; the waiter stored both
//     (steps 3 and 1) and then reads `cancelled`. A sequentially consistent
//     fence between the waiter's stores and its load pairs with the seq_cst
//     accesses of `cancel`, so at least one side sees the other's write: if
//     the waiter misses the flag, `cancel` sees the ticket and wakes it.
//  7. Switch: `switchAway(.park)`; `finishSwitch` moves `parking` to
//     `parked` (releasing CAS: the saved context, for whoever readies it).
//     Resume: the claimer wrote `cause` and then called `ready()`, whose
//     releasing store (or CAS, if still `parking`) publishes it to the
//     worker that switches the thread back in; the thread reads `cause`,
//     clears its wait state and returns.
//
// | operation                             | ordering  | pairs with                                |
// |---------------------------------------|-----------|-------------------------------------------|
// | arm: claim = ticket                   | release   | the claimer's acquiring CAS on `claim`    |
// | runState = parking                    | release   | `ready()`'s acquiring load                |
// | step 6: fence, then load `cancelled`  | seq_cst   | `cancel`: seq_cst store of `cancelled`,   |
// |                                       |           | then seq_cst loads of the wait state      |
// | finishSwitch: parking -> parked (CAS) | release   | `ready()`'s acquiring load                |
// | claimer: cause, then parked -> queued | release   | the scheduler's acquire of the thread     |
//
// ## Deadline and cancel scopes (Deadline.swift)
//
// `withDeadline` and `withCancelScope` interrupt every cancellable wait
// inside them. Park's part: the fiber's `scopes` is one load, nil outside
// every scope; inside one, step 1 also returns at once if a scope has
// tripped (`.cancelled`, `.deadlineExceeded`), and step 6 checks the
// scopes' `trips` after the same fence, the Dekker pairing with
// `ScopeNode.trip`. A scope's deadline is at most one timer entry per
// scope (often one shared by a thread's successive scopes, Deadline.swift),
// not one per wait, so a wait inside a scope arms no timer of its own; a wait's own
// deadline (a select's timeout, a socket's) still ends it `.timedOut`
// when it comes first. On a plain OS thread the futex takes the earlier
// of the two deadlines (`waitOnThread(in:)`).
//
// ## No reference counting
//
// The park reaches its worker and fiber through unretained references (the
// worker outlives the wait; the scheduler holds the fiber's +1), and
// `waitQueued` hands out an `UnownedWaker`: a park or a wake changes no
// reference count. Only a deadline's timer entry and the strong `Waker` of
// other waits hold one. `WaitReason` is trivial (its `.other` case holds a
// `StaticString`), so recording it is a plain store.
//
// ## Plain OS threads (`waitOnThread`)
//
// Without a current fiber the wait arms a `ThreadWaiter` (a `WaitTarget`
// with a futex word) and blocks in `ThreadWaiter.block` with the remaining
// timeout: a deadline is the futex's job here, not a timer heap's. On
// timeout the thread claims its own ticket with `disarm`; if that fails, a
// waker won, and the thread waits for its unpark and returns that waker's
// cause. Only waits that pass `core:` (joins, and so `Runtime.run` and
// `JoinHandle.join`) count for deadlock reports (`beginExternalWait`).

import CContext
import Synchronization

/// The one way anything in GreenThreads waits.
///
/// A green thread parks (its worker runs something else); a plain OS thread
/// blocks on a futex. Either way the wait is armed with a ticket, and
/// `register` hands a `Waker` for it to whatever will end it. Returns why
/// the wait ended.
enum Park {
    /// - Parameters:
    ///   - reason: what a deadlock report says this thread waits for.
    ///   - deadline: monotonic nanoseconds, or nil to wait indefinitely.
    ///   - cancellable: whether `JoinHandle.cancel` (and shutdown) end it.
    ///   - core: the runtime an OS thread waits on, for deadlock reports.
    ///     Evaluated only on an OS thread: a green thread's park would
    ///     otherwise retain and release the runtime, whose count every
    ///     worker shares.
    ///   - compactible: nothing outside the thread holds a pointer into its
    ///     stack during this wait (a plain sleep), so a long one may be
    ///     compacted (StackCompaction.swift).
    ///   - register: publishes the waker; returns false if the event has
    ///     already happened (then the wait ends at once as `.notified`).
    static func wait(
        reason: @autoclosure () -> WaitReason,
        deadline: Int64? = nil,
        cancellable: Bool,
        core: @autoclosure () -> RuntimeCore? = nil,
        compactible: Bool = false,
        register: (Waker) -> Bool
    ) -> WakeCause {
        waitQueued(reason: reason(), deadline: deadline, cancellable: cancellable, core: core(),
                   compactible: compactible) { waker in
            register(Waker(target: waker.target, ticket: waker.ticket))
        }
    }

    /// `wait` for a waiter that keeps its target unretained and is out of
    /// every queue before the wait ends (a channel or Sync `Waiter`, a
    /// joiner): it gets an `UnownedWaker`, so the park takes no reference.
    /// A `Waiter` in a `WaiterList` parks through the overload in
    /// WaiterList.swift, which also queues and unlinks it.
    static func waitQueued(
        reason: @autoclosure () -> WaitReason,
        deadline: Int64? = nil,
        cancellable: Bool,
        core: @autoclosure () -> RuntimeCore? = nil,
        compactible: Bool = false,
        register: (UnownedWaker) -> Bool
    ) -> WakeCause {
        guard let raw = gt_current_worker(),
              let f = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef({ $0.local.pointee.current })
        else {
            return waitOnThread(deadline: deadline, cancellable: cancellable, core: core(), register: register)
        }
        // Guaranteed references: the worker outlives the wait, and the
        // scheduler holds the fiber's +1 until it retires. A strong local
        // for either costs an atomic retain/release pair per park (and the
        // worker's count is shared with every thread that wakes one).
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
            f._withUnsafeGuaranteedRef { fiber in
                parkGreen(worker, fiber, reason: reason, deadline: deadline, cancellable: cancellable,
                          compactible: compactible, register: register)
            }
        }
    }

    /// `wait` on a green thread: steps 1-7 of the file header.
    @inline(__always)
    private static func parkGreen(
        _ worker: Worker, _ fiber: Fiber, reason: () -> WaitReason, deadline: Int64?, cancellable: Bool,
        compactible: Bool, register: (UnownedWaker) -> Bool
    ) -> WakeCause {
        // One load for every scope (Deadline.swift): nil outside them all.
        let scopes = fiber.scopes
        if cancellable {
            if fiber.cancelled.load(ordering: .relaxed) { return .cancelled }
            if let scopes, let cause = scopes._withUnsafeGuaranteedRef({ $0.interruption }) { return cause }
        }
        fiber.cancellableWait.store(cancellable, ordering: .relaxed)
        // Parking before the wait can be claimed (steps 2-3): a wake that
        // comes before the switch finishes must find `parking`, not
        // `running`, and `cancel` claims the armed ticket directly.
        fiber.runState.store(Fiber.RunState.parking.rawValue, ordering: .relaxed)
        let ticket = fiber.arm()
        fiber.waitReason = reason()
        // For the dump's "since when": a tick read, not a clock call (see
        // Dump.swift), so that the channel round trip does not pay for it.
        fiber.parkedTicks = gt_ticks()
        if !register(UnownedWaker(target: fiber, ticket: ticket)) {
            if fiber.disarm(ticket) {
                fiber.runState.store(Fiber.RunState.running.rawValue, ordering: .relaxed)
                fiber.cancellableWait.store(false, ordering: .relaxed)
                fiber.waitReason = .none
                return .notified
            }
            // Claimed meanwhile: its ready() is coming; park to consume it.
        }
        // The heap the timer went to (the worker lives as long as the core,
        // which the fiber holds), told if the wait ends some other way.
        // (Unmanaged: an optional reference would be retained to test it.)
        var timers: Unmanaged<TimerHeap>?
        if let deadline {
            timers = Unmanaged.passUnretained(worker.timers)
            // The heap keeps its waker past the wait (lazy deletion), so it
            // holds a reference.
            worker.timers.add(deadline: deadline, waker: Waker(target: fiber, ticket: ticket))
            // (A virtual clock is advanced by the last idle worker: no
            // sleeper needs waking for a new timer.)
            if !worker.clock.isVirtual { worker.idle.timerAdded(deadline: deadline) }
        }
        // Step 6, Dekker with RuntimeCore.cancel: it stores the flag, then
        // reads our ticket; we stored the ticket (arm), then read the flag.
        // The fence orders our store before our load, so at least one side
        // sees the other's write and the wait cannot miss its cancel.
        // The same pairing with a scope's trip (Deadline.swift).
        if cancellable {
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if fiber.cancelled.load(ordering: .relaxed) {
                Waker(target: fiber, ticket: ticket).wake(.cancelled)
            } else if let scopes, let cause = scopes._withUnsafeGuaranteedRef({ $0.interruption }) {
                Waker(target: fiber, ticket: ticket).wake(cause)
            }
        }
        if compactible, let deadline { worker.considerCompaction(fiber, ticket: ticket, deadline: deadline) }
        worker.switchAway(.park)
        // Resumed, perhaps on another worker: `worker` is stale from here on.
        fiber.cancellableWait.store(false, ordering: .relaxed)
        fiber.waitReason = .none
        let cause = fiber.cause
        if let timers, cause != .timedOut { timers._withUnsafeGuaranteedRef { $0.noteStale() } }
        return cause
    }

    private static func waitOnThread(
        deadline: Int64?, cancellable: Bool, core: RuntimeCore?, register: (UnownedWaker) -> Bool
    ) -> WakeCause {
        if let raw = gt_current_scopes() {
            return Unmanaged<WaitScopes>.fromOpaque(raw)._withUnsafeGuaranteedRef { scopes in
                waitOnThread(in: scopes, deadline: deadline, cancellable: cancellable, core: core,
                             register: register)
            }
        }
        let waiter = ThreadWaiter()
        let ticket = waiter.arm()
        let waker = Waker(target: waiter, ticket: ticket)
        // `waiter` lives until we return, so the unowned waker stays valid.
        if !register(UnownedWaker(target: waiter, ticket: ticket)), waiter.disarm(ticket) { return .notified }
        core?.beginExternalWait(waker)
        let cause = waiter.block(ticket: ticket, deadline: deadline)
        core?.endExternalWait(waker)
        return cause
    }

    /// `waitOnThread` inside a deadline or cancel scope (Deadline.swift,
    /// "Plain OS threads"): the scopes' one waiter, so that a cancel can
    /// find the wait, and the earlier of the two deadlines on the futex.
    private static func waitOnThread(
        in scopes: WaitScopes, deadline: Int64?, cancellable: Bool, core: RuntimeCore?,
        register: (UnownedWaker) -> Bool
    ) -> WakeCause {
        var effective = deadline
        var scopeFirst = false
        if cancellable {
            if let cause = scopes.interruption { return cause }
            if scopes.deadline != .max {
                if scopes.deadline <= gt_now_ns() { return .deadlineExceeded }
                if deadline.map({ scopes.deadline < $0 }) ?? true {
                    effective = scopes.deadline
                    scopeFirst = true
                }
            }
        }
        let waiter = scopes.threadWaiter.unsafelyUnwrapped
        scopes.threadCancellableWait.store(cancellable, ordering: .relaxed)
        defer { scopes.threadCancellableWait.store(false, ordering: .relaxed) }
        let ticket = waiter.arm()
        let waker = Waker(target: waiter, ticket: ticket)
        if !register(UnownedWaker(target: waiter, ticket: ticket)), waiter.disarm(ticket) { return .notified }
        // Dekker with ScopeNode.trip, as on a green thread.
        if cancellable {
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if let cause = scopes.interruption { waker.wake(cause) }
        }
        core?.beginExternalWait(waker)
        let cause = waiter.block(ticket: ticket, deadline: effective)
        core?.endExternalWait(waker)
        return cause == .timedOut && scopeFirst ? .deadlineExceeded : cause
    }

    /// Now, on the clock of the caller's runtime (virtual or monotonic);
    /// the monotonic clock on a plain OS thread.
    @inline(__always)
    static func now() -> Int64 {
        guard let raw = gt_current_worker() else { return gt_now_ns() }
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.clock.now() }
    }

    /// Deadline `duration` from now (see `now()`), saturating.
    static func deadline(after duration: Duration) -> Int64 {
        deadline(after: duration, from: now())
    }

    /// Deadline `duration` after `start` (a `now()`), saturating.
    static func deadline(after duration: Duration, from start: Int64) -> Int64 {
        let (s, atto) = duration.components
        let ns = s.multipliedReportingOverflow(by: 1_000_000_000)
        if ns.overflow || s < 0 { return s < 0 ? start : Int64.max }
        let total = ns.partialValue.addingReportingOverflow(atto / 1_000_000_000)
        let d = start.addingReportingOverflow(total.partialValue)
        return total.overflow || d.overflow ? Int64.max : d.partialValue
    }
}
