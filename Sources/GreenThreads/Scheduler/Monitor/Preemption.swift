import CContext
import Synchronization

/// Requests another thread leaves for a worker, in `Worker.interrupts`.
///
/// One byte, so that `switchAway` pays a single relaxed load and a test for
/// the ones that concern it (the same load the stop flag alone cost before).
enum Interrupt {
    /// Shutdown: every switch returns to the scheduling loop, which exits.
    static let stop: UInt8 = 1
    /// A replacement worker whose stuck worker came back: return to the
    /// scheduling loop and go dormant (`Worker.continueAsSpare`).
    static let retire: UInt8 = 2
    /// Sysmon saw the current green thread run past the preemption
    /// threshold while others wait: `GreenThread.checkpoint()` yields.
    /// Any switch satisfies it, but clearing it there would put a
    /// read-modify-write (and a call) on the switch path: sysmon clears it
    /// once it sees the worker's switch count move, and `checkpoint()` when
    /// it honours it. Meanwhile a stale bit costs at most one extra yield.
    static let preempt: UInt8 = 4
    /// Jobs of the runtime's `TaskExecutor` wait in this worker's queue:
    /// the next switch returns to the scheduling loop, which runs them
    /// (Async/TaskExecutor.swift). Set and cleared by the worker itself.
    static let jobs: UInt8 = 8
    /// The bits that send every switch back to the scheduling loop.
    static let toLoop: UInt8 = stop | retire | jobs
}

extension Worker {
    /// Sysmon's request that the running green thread yield at its next
    /// `checkpoint()`. Relaxed: the worker only needs to see it eventually,
    /// and nothing else is published with it.
    func requestPreemption() {
        interrupts.bitwiseOr(Interrupt.preempt, ordering: .relaxed)
    }

    /// The request is satisfied (the thread switched, or is about to).
    func clearPreemption() {
        if interrupts.load(ordering: .relaxed) & Interrupt.preempt != 0 {
            interrupts.bitwiseAnd(~Interrupt.preempt, ordering: .relaxed)
        }
    }
}

extension GreenThread {
    /// A cheap preemption point for long loops that never park or yield.
    ///
    /// GreenThreads is cooperative: a green thread that computes for a long
    /// time without blocking holds its worker. The runtime's monitor thread
    /// (sysmon) notices a green thread that has run longer than
    /// `Runtime.Configuration.preemptionThreshold` (10 ms by default)
    /// without switching while other green threads wait, and asks it to
    /// yield; `checkpoint()` is where the thread honours that request.
    /// Without a request it costs one out-of-line call and one relaxed load,
    /// a few nanoseconds, so it can sit in the body of a hot loop:
    ///
    /// ```swift
    /// for i in 0..<1_000_000_000 {
    ///     total &+= work(i)
    ///     GreenThread.checkpoint()
    /// }
    /// ```
    ///
    /// On a plain OS thread (outside any runtime) it does nothing.
    public static func checkpoint() {
        guard let raw = gt_current_worker() else { return }
        Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
            if worker.interrupts.load(ordering: .relaxed) != 0 { honourInterrupt(worker) }
        }
    }

    /// Yields like `yield()`, but first makes the waiting work reachable:
    /// due timers (of any worker) are fired into this worker's run-next
    /// slot, and the next pick serves the injector. A plain yield would only
    /// rotate the local queue, and a preempted thread alone on its worker
    /// would be picked straight back.
    @inline(never)
    private static func honourInterrupt(_ worker: Worker) {
        // Only a green thread can yield; the scheduling loop never calls this.
        guard worker.local.pointee.current != nil else { return }
        worker.clearPreemption()
        let now = worker.clock.now()
        if worker.core.earliestDeadline() <= now { _ = worker.core.fireRemoteTimers(now: now) }
        let tick = worker.local.pointee.tick
        worker.local.pointee.tick = tick &+ (Worker.injectorTick - 1 - tick % Worker.injectorTick)
        Worker.scheduleTickDuty(worker.local)
        worker.switchAway(.requeue)
    }
}
