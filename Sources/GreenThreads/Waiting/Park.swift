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
    /// every queue before the wait ends (a channel or Sync `Waiter`): it
    /// gets an `UnownedWaker`, so the park takes no reference.
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
            return waitOnThread(deadline: deadline, core: core(), register: register)
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

    /// `wait` on a green thread: steps 1-7 of ARCHITECTURE.md §7.
    @inline(__always)
    private static func parkGreen(
        _ worker: Worker, _ fiber: Fiber, reason: () -> WaitReason, deadline: Int64?, cancellable: Bool,
        compactible: Bool, register: (UnownedWaker) -> Bool
    ) -> WakeCause {
        if cancellable && fiber.cancelled.load(ordering: .relaxed) { return .cancelled }
        fiber.cancellableWait.store(cancellable, ordering: .relaxed)
        let ticket = fiber.arm()
        // Parking before anyone can see the waker: a wake that comes before
        // the switch finishes must find `parking`, not `running`.
        fiber.runState.store(Fiber.RunState.parking.rawValue, ordering: .releasing)
        fiber.waitReason = reason()
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
        // Dekker with RuntimeCore.cancel: it stores the flag then reads our
        // ticket; we stored the ticket (arm) and now read the flag. The
        // fence orders our store before our load, so at least one side
        // sees the other's write and the wait cannot miss its cancel.
        if cancellable {
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if fiber.cancelled.load(ordering: .relaxed) { Waker(target: fiber, ticket: ticket).wake(.cancelled) }
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

    private static func waitOnThread(deadline: Int64?, core: RuntimeCore?, register: (UnownedWaker) -> Bool) -> WakeCause {
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

    /// Now, on the clock of the caller's runtime (virtual or monotonic);
    /// the monotonic clock on a plain OS thread.
    @inline(__always)
    static func now() -> Int64 {
        guard let raw = gt_current_worker() else { return gt_now_ns() }
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.clock.now() }
    }

    /// Deadline `duration` from now (see `now()`), saturating.
    static func deadline(after duration: Duration) -> Int64 {
        let (s, atto) = duration.components
        let start = now()
        let ns = s.multipliedReportingOverflow(by: 1_000_000_000)
        if ns.overflow || s < 0 { return s < 0 ? start : Int64.max }
        let total = ns.partialValue.addingReportingOverflow(atto / 1_000_000_000)
        let d = start.addingReportingOverflow(total.partialValue)
        return total.overflow || d.overflow ? Int64.max : d.partialValue
    }
}
