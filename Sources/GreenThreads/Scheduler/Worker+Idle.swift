import CContext
import Synchronization

// Worker+Idle.swift: what a worker does with no work of its own: spin,
// steal, and park. The handshake that keeps a parking worker from missing
// new work is in Worker.swift's header ("The spin/park handshake"); the
// counters it runs on are Idle.swift's.
//
// ## Spinning
//
// A worker allowed to spin (`Idle.tryStartSpinning`; a refused one parks at
// once) loops over stealing, the injectors and its own queues with a
// growing `cpu_relax` back-off, for up to `spinNanos`. A futex sleep and
// wake costs microseconds and a syscall on both sides, and bursty work (a
// spawn loop, a producer) usually comes back within the window; while anyone
// spins, submitters wake nobody. While green threads wait on sockets the
// window shrinks to `ioSpinNanos`: their work arrives through epoll, where
// the worker blocked in epoll_wait gets it as soon as a spinner would, and
// a longer spin only takes CPU from whatever shares the cores. A runtime
// with one worker never spins: there is nobody to steal from, and outside
// work arrives with a wake-up. Under a virtual clock, once every other
// worker sleeps, a worker parks at once: the only thing left is a timer,
// and spinning would cost real time per simulated event.
//
// ## Stealing
//
// Each round of the spin looks, in order, at its own node's peers
// (`stealFromOwnNode`), its node's injector and its own queues, and only
// then, the node being dry, at the other nodes, nearest first, the far ones
// in fewer rounds and one thread at a time (`stealFromOtherNodes`). A peer
// with a short deque is left to itself until the window ends; a last
// stretch of rounds then takes from it too. Why, and how much each steal
// takes: Worker+Steal.swift.
//
// ## Parking
//
// `parkIdle`: join the sleeper list, stop spinning, full fence, re-check
// every queue, the earliest deadline and `stopping` (leave if any; leave
// as a spinner if work was queued, `leaveToTakeVisibleWork`); return
// decayed stacks, its own and its node's shared pool's, to the system in
// slices (StackPool.swift), leaving as soon as work, a due timer or
// shutdown shows up; then read the clock again
// (trimming took time) and sleep until the earliest deadline of any worker,
// or the pools' next trim, whichever is first. A sleep with no timer at all
// may be a deadlock: it wakes after a confirmation delay and reports one if
// nothing moved (`RuntimeCore.mayBeDeadlocked`). The sleep is on the
// worker's futex word (parker.c), or, for at most one idle worker once any
// fd is registered, in epoll_wait (Net/Poller.swift).
//
// A wake-up from a notifier means it took this worker off the sleeper list
// and handed it a spinning count. A timeout means the worker takes itself
// off; if a notifier claimed it meanwhile, an unpark is on its way, which
// `leaveSleepers` consumes before taking over the spinning count.

extension Worker {
    /// How long a spinning worker keeps looking before it sleeps. A futex
    /// sleep and wake costs microseconds and a syscall on both sides; work
    /// that arrives in bursts (a spawn loop, a producer) usually comes back
    /// within this window, and while anyone spins, submitters wake nobody.
    static let spinNanos: Int64 = 50_000

    /// The spin window while green threads wait on sockets. Their work
    /// arrives through epoll, where an idle worker blocked in epoll_wait
    /// gets it as soon as a spinner would, so spinning mostly burns CPU that
    /// the rest of the machine (a client on the same cores) needs; a spinner
    /// is preempted instead of yielding. On the echo benchmark (2 workers,
    /// 100 connections, load generator on the same 2 cores) the 50 µs window
    /// costs 5.2–6.8 µs of server CPU per request against 4.6–4.8 µs with
    /// this one, and four times the involuntary context switches.
    static let ioSpinNanos: Int64 = 5_000

    /// A victim's run-next slot is left alone for this long into a spin.
    /// It usually holds the partner of a hand-off (a consumer its producer
    /// just woke) that the owner will run within microseconds; stealing it
    /// at once splits the pair across cores and every message then crosses
    /// between them (Go waits ~3 µs for the same reason).
    static let runNextGraceNanos: Int64 = 5_000

    func spinForWork() -> Unmanaged<Fiber>? {
        let start = gt_now_ns()
        var round = 0
        var takeRunNext = false
        // Short queues are left to their owners until the window ends;
        // then one last stretch of rounds takes everything (Worker+Steal.swift,
        // "Short queues").
        var leavingShortQueues = true
        let crossesNodes = victims.count > 1
        while true {
            if let f = stealFromOwnNode(takeRunNext: takeRunNext, leavingShortQueues: leavingShortQueues) { return f }
            if let f = homeInjector.popBatch(max: 1) { return f }
            if let f = nextLocal() { return f }
            // Jobs of the runtime's executor: `findRunnable` runs them.
            if takeJobs(takePeers: takeRunNext) { return nil }
            // This node is dry: the others, nearest first, far ones less often.
            if crossesNodes, let f = stealFromOtherNodes(round: round, takeRunNext: takeRunNext, leavingShortQueues: leavingShortQueues) {
                return f
            }
            round += 1
            for _ in 0..<min(round, 32) { gt_cpu_relax() }
            if round % 8 == 0 {
                if poller.worthPolling, pollReady(keepOne: true) > 0, let f = nextLocal() { return f }
                let spun = gt_now_ns() - start
                let window = poller.ioWaiters.load(ordering: .relaxed) > 0 ? Self.ioSpinNanos : Self.spinNanos
                if stopping.load(ordering: .relaxed) || spun > window {
                    if !leavingShortQueues { return nil }
                    leavingShortQueues = false
                }
                takeRunNext = spun > Self.runNextGraceNanos
            }
        }
    }

    /// Leaves the spinning state on finding work; the last spinner out wakes
    /// a replacement so that further work still gets found.
    @inline(__always)
    func found(_ f: Unmanaged<Fiber>) -> Unmanaged<Fiber> {
        if local.pointee.isSpinning {
            local.pointee.isSpinning = false
            if idle.stopSpinning() { idle.notifyWork() }
        }
        return f
    }

    /// Sleeps until notified of work or until the earliest timer anywhere.
    func parkIdle() {
        idle.addSleeper(self)
        if local.pointee.isSpinning {
            local.pointee.isSpinning = false
            _ = idle.stopSpinning()
        }
        // StoreLoad: we are visible as a sleeper (and no longer spinning)
        // before we look at the queues one last time; pairs with the fence
        // in Idle.notifyWork.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        var now = clock.now()
        if core.hasVisibleWork() {
            leaveToTakeVisibleWork()
            return
        }
        if core.earliestDeadline() <= now || core.stopping.load(ordering: .acquiring) {
            leaveSleepers()
            // Serve due timers here, whoever owns them, so that returning to
            // the loop makes progress instead of coming straight back.
            _ = core.fireRemoteTimers(now: now)
            return
        }
        var deadline = core.earliestDeadline()
        if clock.isVirtual && deadline != Int64.max {
            // Virtual time: the last worker to fall idle jumps the clock to
            // the next deadline instead of sleeping until it. The others
            // sleep without a timeout; whatever the timers wake is
            // scheduled here and spreads through the usual notifications.
            if idle.sleeping.load(ordering: .acquiring) == core.workers.count {
                clock.advance(to: deadline)
                leaveSleepers()
                return
            }
        }
        // Slice by slice, giving way to new work, due timers and shutdown:
        // after a million sleepers this is seconds of syscalls. Only stacks
        // that went unused for a whole decay period (StackPool); under a
        // virtual clock, whose sleeps take no real time, all of them at once.
        let decay = clock.isVirtual ? 0 : StackPool.decayNanos
        while !local.pointee.stacks.trim(now: gt_now_ns(), decay: decay) || !sharedStacks.trim(now: gt_now_ns(), decay: decay) {
            if core.hasVisibleWork() {
                leaveToTakeVisibleWork()
                return
            }
            if core.earliestDeadline() <= clock.now() || core.stopping.load(ordering: .acquiring) {
                leaveSleepers()
                return
            }
        }
        Self.bump(counters.parks)
        // Read the clock again: trimming took time, and a timeout computed
        // from before it would oversleep the deadline by as much.
        deadline = core.earliestDeadline()
        now = clock.now()
        var timeout: Int64 = deadline == Int64.max || clock.isVirtual ? -1 : max(0, deadline - now)
        var watchingForDeadlock = timeout < 0 && core.mayBeDeadlocked()
        if watchingForDeadlock { timeout = RuntimeCore.deadlockConfirmNanos }
        // Wake to trim once the stacks pooled now have gone unused a whole
        // period. (Not a deadlock confirmation, if that comes first: the
        // next sleep watches again.)
        let localDue = local.pointee.stacks.trimDue(decay: decay)
        let sharedDue = sharedStacks.trimDue(decay: decay)
        if let due = localDue.map({ min($0, sharedDue ?? $0) }) ?? sharedDue {
            let untilTrim = max(0, due &- gt_now_ns())
            if timeout < 0 || untilTrim < timeout {
                timeout = untilTrim
                watchingForDeadlock = false
            }
        }
        let epoch = core.activityEpoch()
        let sleepStart = watchingForDeadlock ? gt_now_ns() : 0
        if !clock.isVirtual { idle.noteSleep(until: timeout < 0 || watchingForDeadlock ? Int64.max : deadline) }
        defer { idle.sleepUntil.store(Int64.max, ordering: .relaxed) }
        // At most one idle worker sleeps in epoll_wait (once any fd was
        // registered); the others sleep on their futex. See Net/Poller.swift.
        let woken: Bool
        if poller.inUse.load(ordering: .relaxed), !poller.blockerRole.load(ordering: .relaxed),
           poller.blockerRole.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            local.pointee.collectingPolled = true
            woken = poller.blockIdle(worker: self, timeout: timeout)
            local.pointee.lastPoll = gt_now_ns()
        } else {
            woken = gt_parker_park(parker, timeout)
        }
        // Having slept, we just gave our CPU away (CPUYield.swift).
        local.pointee.lastCPUYield = gt_now_ns()
        if woken {
            // A notifier took us out of the list and gave us its spinning count.
            local.pointee.isSpinning = !core.stopping.load(ordering: .acquiring)
        } else {
            // Only after the whole confirmation delay: an epoll_wait also
            // ends early, for an edge nobody waits for or a signal, and a
            // check at that moment would confirm nothing.
            if watchingForDeadlock, gt_now_ns() &- sleepStart >= RuntimeCore.deadlockConfirmNanos,
               core.mayBeDeadlocked(), core.activityEpoch() == epoch {
                core.reportDeadlock(epoch: epoch)
            }
            leaveSleepers()
        }
        // What epoll_wait readied is in our deque; we run one, and wake the
        // others only now that we are off the sleeper list (while on it, we
        // could have been picked to wake ourselves).
        if local.pointee.collectingPolled { _ = distributePolled(keepOne: true) }
    }

    /// Ends this worker's sleep (Idle.wakeOne/wakeAll, after taking it
    /// off the sleeper list). A worker asleep in epoll_wait does not watch
    /// its futex word, so it also gets the eventfd. A Dekker pair with
    /// `Poller.blockIdle`: here store NOTIFIED, fence, load `inPoll`; there
    /// store `inPoll`, fence, load the word. At least one side sees the
    /// other's store (Net/Poller.swift's header, "Contract with the
    /// scheduling loop").
    func unpark() {
        gt_parker_unpark(parker)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if inPoll.load(ordering: .relaxed) { poller.signal() }
    }

    /// A park's re-check saw queued work: the caller leaves the sleeper
    /// list and goes back to its loop as a spinner, whatever
    /// `Idle.tryStartSpinning` would say (Go's
    /// findRunnable does the same after its last look at the run queues).
    /// Only a spinner steals, and the work seen may be where only a thief
    /// reaches it (a peer's deque or jobs); a worker refused the spin, such
    /// as a runtime's lone configured worker, would otherwise come straight
    /// back here, see the same work, and never sleep nor run it.
    private func leaveToTakeVisibleWork() {
        // A notifier that claimed us meanwhile handed us its spinning count.
        leaveSleepers()
        if local.pointee.isSpinning { return }
        local.pointee.isSpinning = true
        idle.spinning.add(1, ordering: .sequentiallyConsistent)
    }

    private func leaveSleepers() {
        if idle.removeSleeper(self) { return }
        // A notifier claimed us concurrently: consume its unpark and take
        // over the spinning count it handed us.
        while !gt_parker_park(parker, -1) {}
        local.pointee.isSpinning = !core.stopping.load(ordering: .acquiring)
    }
}
