import CContext
import Synchronization

/// The runtime's monitor: one OS thread, outside the scheduler, that
/// watches for workers stuck inside one green thread (Go's sysmon).
///
/// The problem: scheduling is cooperative. A green thread that computes for
/// a long time, or blocks in a system call the runtime does not know about
/// (`usleep`, a blocking `read`, a C library), holds its worker's OS thread,
/// and nothing can take the CPU from it. What the runtime can do is what Go
/// does for a goroutine in a system call: ask it to yield where it offers
/// to (`GreenThread.checkpoint()`), and give the *other* green threads a new
/// OS thread to run on.
///
/// A worker is *stalled* when it has been inside a green thread (its
/// `runningGreen` flag) and its switch counter has not moved since sysmon
/// first saw that count: the same green thread has held it all along, in a
/// long loop or an unannounced blocking call. Only a stall with other work
/// waiting (queued green threads anywhere, or a due timer) matters:
///
/// 1. After `preemptionThreshold` sysmon sets the worker's preemption
///    request (`Interrupt.preempt`, Preemption.swift), which
///    `GreenThread.checkpoint()` honours by yielding. Before it yields it
///    fires every due timer and moves its tick to the injector tick: a
///    plain yield only rotates the local queue, and a thread alone on its
///    worker would get the CPU straight back. Yielders waiting behind the
///    stall count as waiting work too (looked at once per stall).
/// 2. After `handoffThreshold`, if the request was not honoured (within a
///    grace period) and no worker is idle to pick the work up, sysmon
///    activates a spare worker (SpareWorker.swift) that takes over the
///    stuck worker's queue, steals, serves the injector and every timer.
///    The stuck worker keeps its OS thread and green thread; a replacement
///    only keeps the *others* running. Its yield queue (YieldQueue.swift)
///    is visible to nobody else: at this threshold sysmon first moves it
///    to the injector (`Worker.rescueYields`), idle workers or not.
/// 3. Once the stuck worker switches again, the spare is told to retire:
///    it hands its queue to the injector and goes dormant, so the number of
///    workers running green code is back to the configured count.
///
/// Apart from stalls, a worker that has not switched for a whole round
/// while threads wait in its run-next slot or deque gets an idle worker
/// woken to take them: wakes into an empty run-next slot notify nobody
/// (`Worker.wakeNext`), and this is what keeps a waker that keeps running
/// from stranding the thread it woke.
///
/// And green threads waiting on sockets must always have a worker to
/// collect their readiness: when none holds the poller role and no
/// `epoll_wait` has returned for `unwatchedNanos`, sysmon wakes a sleeper,
/// which polls and takes the role (`watchSockets`).
///
/// **Sleeping.** Rounds start 20 µs apart and the delay doubles after 50
/// quiet rounds, up to 10 ms (Go's schedule); any action resets it. After
/// `idleRoundsBeforeParking` rounds at 10 ms with every active worker
/// asleep and no spare in use, sysmon parks without a timeout: it sets
/// `SysmonBell.asleep`, issues a full fence and re-checks; a worker that
/// leaves the sleeper list (`Idle.wakeOne`, `wakeMore`, `removeSleeper`)
/// fences after its decrement and rings the bell if `asleep` is set. Either
/// the worker sees `asleep` or sysmon sees the decrement, so a worker that
/// goes on to stall is always watched. On waking, every stall clock
/// restarts (a count seen before the sleep says nothing about the present).
/// An idle runtime costs no CPU, a busy one about a hundred wake-ups a
/// second.
///
/// **Off switches.** `preemptionThreshold: nil` and `handoffThreshold: nil`
/// turn either part off; both off, there is no sysmon thread and no spare,
/// and wakes into the run-next slot notify every time (nobody would catch
/// a stranded one). A `.virtual` clock never starts sysmon: a replacement
/// worker would make a seeded single-worker run depend on wall-clock time.
/// Shutdown stops and joins sysmon before it stops the workers, so nothing
/// activates a spare after that (RuntimeCore.swift).
final class Sysmon: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the counters and the stop flag are
    // atomics; `thread` is written by `start` and read by `stop`, both on
    // the thread that starts and shuts down the runtime; `core` outlives
    // sysmon (shutdown joins it first).

    unowned(unsafe) let core: RuntimeCore
    let bell: SysmonBell
    let preemptNanos: Int64?
    let handoffNanos: Int64?
    private let stopRequested = Atomic<Bool>(false)
    private var thread: UInt64 = 0

    let handoffs = Atomic<Int>(0)
    let preemptionRequests = Atomic<Int>(0)
    /// Yield queues taken over from stuck workers (`Worker.rescueYields`).
    let yieldRescues = Atomic<Int>(0)
    /// How long readiness may go uncollected before sysmon wakes a sleeper
    /// to poll (Go's sysmon polls the network itself after 10 ms).
    static let unwatchedNanos: Int64 = 10_000_000

    static let minDelay: Int64 = 20_000
    static let maxDelay: Int64 = 10_000_000
    static let quietRoundsBeforeBackoff = 50
    /// Rounds at the longest delay with every worker asleep before sysmon
    /// parks for good (≈100 ms): a busy runtime that dips into idleness
    /// between bursts does not pay a bell ring for every burst.
    static let idleRoundsBeforeParking = 10
    /// Time a preemption request gets before a hand-off: a loop that calls
    /// `checkpoint()` honours it within nanoseconds unless its OS thread
    /// is itself descheduled.
    static let preemptionGrace: Int64 = 1_000_000

    /// What sysmon last saw of one worker (sysmon thread only).
    private struct Watch {
        var count = -1
        var since: Int64 = 0
        var preemptedAt: Int64?
        /// Whether sysmon looked at its yield queue in this stall (each
        /// look is a membarrier; the ring cannot change before it switches).
        var yieldsLooked = false
        var yieldsWaiting = false
    }

    private var watch: [Watch]
    /// Per worker: the spare replacing it.
    private var replacement: [Int?]
    /// Per spare: the worker it replaces and that worker's switch count at
    /// the hand-off.
    private var replacing: [(worker: Int, count: Int)?]
    /// Spares told to retire that have not gone dormant yet.
    private var retiring: Set<Int> = []

    init(core: RuntimeCore, preemptNanos: Int64?, handoffNanos: Int64?) {
        self.core = core
        bell = core.idle.sysmonBell
        self.preemptNanos = preemptNanos
        self.handoffNanos = handoffNanos
        let n = core.workers.count
        watch = Array(repeating: Watch(), count: n)
        replacement = Array(repeating: nil, count: n)
        replacing = Array(repeating: nil, count: n)
    }

    func start() {
        let rc = gt_thread_start(sysmonMain, Unmanaged.passRetained(self).toOpaque(), &thread)
        precondition(rc == 0, "GreenThreads: could not start the sysmon thread (errno \(-rc))")
    }

    /// Stops and joins the thread (shutdown).
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        bell.asleep.store(false, ordering: .sequentiallyConsistent)
        gt_parker_unpark(bell.parker)
        gt_thread_join(thread)
    }

    // MARK: The loop

    fileprivate func run() {
        var delay = Self.minDelay
        var quietRounds = 0
        var idleRounds = 0
        while !stopRequested.load(ordering: .acquiring) {
            _ = gt_parker_park(bell.parker, delay)
            if stopRequested.load(ordering: .acquiring) { break }
            let now = gt_now_ns()
            if observe(now: now) {
                delay = Self.minDelay
                quietRounds = 0
            } else {
                quietRounds += 1
                if quietRounds > Self.quietRoundsBeforeBackoff { delay = min(delay * 2, Self.maxDelay) }
            }
            idleRounds = delay == Self.maxDelay && everyoneAsleep ? idleRounds + 1 : 0
            if idleRounds >= Self.idleRoundsBeforeParking {
                idleRounds = 0
                if parkUntilRung() {
                    delay = Self.minDelay
                    quietRounds = 0
                }
            }
        }
    }

    /// Every active worker asleep, no spare in use: nobody can be stalled.
    private var everyoneAsleep: Bool {
        if !retiring.isEmpty || replacing.contains(where: { $0 != nil }) { return false }
        return core.idle.sleeping.load(ordering: .sequentiallyConsistent)
            >= core.idle.activeWorkers.load(ordering: .sequentiallyConsistent)
    }

    /// Parks until a worker stops sleeping (`Idle` rings the bell) or
    /// shutdown. Returns false if a worker woke in the meantime.
    private func parkUntilRung() -> Bool {
        bell.asleep.store(true, ordering: .sequentiallyConsistent)
        // StoreLoad: pairs with the fence in `SysmonBell.ring`. Either the
        // waking worker sees `asleep` and rings, or we see its decrement.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if !everyoneAsleep {
            bell.asleep.store(false, ordering: .relaxed)
            return false
        }
        while bell.asleep.load(ordering: .acquiring) && !stopRequested.load(ordering: .acquiring) {
            _ = gt_parker_park(bell.parker, -1)
        }
        // Counts seen before the sleep are stale as start times: a worker
        // that ran, slept and runs again under the same count is not stalled.
        let now = gt_now_ns()
        for i in watch.indices { watch[i].since = now }
        return true
    }

    /// One round: look at every active worker; request preemptions, hand
    /// off stuck workers, retire spares whose worker came back. Returns
    /// whether anything happened (or is under way).
    private func observe(now: Int64) -> Bool {
        var acted = false
        var waiting: Bool?
        func workWaiting() -> Bool {
            if let waiting { return waiting }
            let w = core.hasVisibleWork() || core.earliestDeadline() <= now
            waiting = w
            return w
        }
        let workers = core.workers
        for i in workers.indices {
            let w = workers[i]
            if w.isSpare && !w.isActiveSpare { continue }
            let running = w.runningGreen.load(ordering: .relaxed)
            let count = w.switchCount.load(ordering: .relaxed)
            if !running || count != watch[i].count {
                // It switched: a preemption request for the old stall is spent.
                if watch[i].preemptedAt != nil { w.clearPreemption() }
                watch[i] = Watch(count: running ? count : -1, since: now)
                continue
            }
            // Still in the same green thread as last round, with woken
            // threads waiting on it (a quiet hand-off to a waker that kept
            // running, see `Worker.wakeNext`): an idle worker's spin takes
            // them, if one is woken. (Its yielders are not for a thief:
            // they wait for the preemption request or the rescue below.)
            if w.hasStealableWork, wakeIdleWorker() { acted = true }
            let stalled = now - watch[i].since
            // Its own yielders wait behind it too (no other worker can see
            // them, YieldQueue.swift): worth a preemption request as well.
            if let p = preemptNanos, stalled >= p, watch[i].preemptedAt == nil,
               workWaiting() || yieldsWaiting(i, w) {
                w.requestPreemption()
                watch[i].preemptedAt = now
                preemptionRequests.add(1, ordering: .relaxed)
                acted = true
                continue
            }
            // Its yielders: no other worker can see them, so once the
            // request has had its grace period they move to the injector,
            // where idle workers (or the spare started just below) find them.
            if let r = handoffNanos ?? preemptNanos.map({ $0 + Self.preemptionGrace }), stalled >= r,
               !watch[i].yieldsLooked || watch[i].yieldsWaiting,
               preemptNanos == nil || watch[i].preemptedAt.map({ now - $0 >= Self.preemptionGrace }) == true {
                watch[i].yieldsLooked = true
                watch[i].yieldsWaiting = false
                let n = w.rescueYields()
                if n > 0 {
                    yieldRescues.add(1, ordering: .relaxed)
                    core.idle.notifyWork(surplus: n)
                    waiting = nil
                    acted = true
                }
            }
            if let h = handoffNanos, stalled >= h, replacement[i] == nil,
               preemptNanos == nil || watch[i].preemptedAt.map({ now - $0 >= Self.preemptionGrace }) == true,
               workWaiting(), noWorkerIdle, let s = dormantSpare(near: w) {
                replacement[i] = s
                replacing[s] = (i, count)
                workers[s].activateSpare()
                handoffs.add(1, ordering: .relaxed)
                acted = true
            }
        }
        for s in replacing.indices {
            guard let (r, count) = replacing[s] else { continue }
            let w = workers[r]
            if w.switchCount.load(ordering: .relaxed) != count || !w.runningGreen.load(ordering: .relaxed) {
                replacing[s] = nil
                replacement[r] = nil
                workers[s].interrupts.bitwiseOr(Interrupt.retire, ordering: .sequentiallyConsistent)
                retiring.insert(s)
            }
        }
        if watchSockets(now: now) { acted = true }
        for s in retiring {
            acted = true
            if !workers[s].isActiveSpare {
                retiring.remove(s)
            } else {
                // Asleep in `Idle`: wake it so it sees the request. Running
                // green code: it sees it at its next switch. Repeated each
                // round, so a spare that fell asleep just after the request
                // is woken by the next one.
                _ = core.idle.wake(workers[s])
            }
        }
        return acted
    }

    /// Readiness must always have a collector: the worker blocked in
    /// epoll_wait, or a running worker that polls whenever it runs dry. Two
    /// states leave it with none while green threads wait on fds and a
    /// worker sleeps on its futex (it parked while another held the
    /// poller role): the role's holder was a spare that then retired, or it
    /// woke for one event whose green thread runs on without switching
    /// (a long loop). Nothing would wake the sleeper: fd readiness is not
    /// queued work, so neither `notifyWork` nor a hand-off sees it. So when
    /// no epoll_wait has returned for `unwatchedNanos`, sysmon wakes one
    /// sleeper, which polls and then takes the role.
    private func watchSockets(now: Int64) -> Bool {
        let poller = core.poller
        guard poller.ioWaiters.load(ordering: .relaxed) > 0, !poller.blockerRole.load(ordering: .relaxed),
              now - poller.lastPolled.load(ordering: .relaxed) >= Self.unwatchedNanos else { return false }
        return wakeIdleWorker()
    }

    /// Wakes a sleeping worker unless one is spinning already (whose
    /// search will find the waiting work). Returns whether it notified.
    private func wakeIdleWorker() -> Bool {
        let idle = core.idle
        if idle.spinning.load(ordering: .relaxed) != 0 || idle.sleeping.load(ordering: .relaxed) == 0 { return false }
        idle.notifyWork()
        return true
    }

    /// Whether yielders wait behind worker `i`'s stalled green thread;
    /// looked at once per stall.
    private func yieldsWaiting(_ i: Int, _ w: Worker) -> Bool {
        if !watch[i].yieldsLooked {
            watch[i].yieldsLooked = true
            watch[i].yieldsWaiting = w.peekYields() > 0
        }
        return watch[i].yieldsWaiting
    }

    /// No worker sleeps or spins: nobody else would pick up waiting work.
    private var noWorkerIdle: Bool {
        core.idle.sleeping.load(ordering: .relaxed) == 0 && core.idle.spinning.load(ordering: .relaxed) == 0
    }

    /// A dormant spare, one on the stuck worker's node if there is one.
    private func dormantSpare(near stuck: Worker) -> Int? {
        var any: Int?
        for w in core.workers where w.isSpare && !w.isActiveSpare && replacing[w.index] == nil
            && !retiring.contains(w.index) {
            if w.node == stuck.node { return w.index }
            if any == nil { any = w.index }
        }
        return any
    }

    /// Spares active now (`RuntimeStats.replacementWorkers`).
    var activeSpares: Int {
        core.workers.reduce(0) { $0 + ($1.isActiveSpare ? 1 : 0) }
    }
}

/// How a worker that stops sleeping wakes a parked sysmon.
final class SysmonBell: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `asleep` is atomic and the parker is a
    // futex word made for use across threads; the pointer never changes.

    /// True while sysmon is parked without a timeout.
    let asleep = Atomic<Bool>(false)
    let parker: UnsafeMutablePointer<gt_parker>

    init() {
        parker = .allocate(capacity: 1)
        gt_parker_init(parker)
    }

    deinit { parker.deallocate() }

    /// Called after a worker left the sleeper list.
    @inline(__always)
    func ring() {
        // StoreLoad: our `sleeping` decrement is ordered before this load;
        // pairs with the fence in `Sysmon.parkUntilRung`.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if asleep.load(ordering: .relaxed) { wake() }
    }

    @inline(never)
    private func wake() {
        if asleep.exchange(false, ordering: .acquiringAndReleasing) { gt_parker_unpark(parker) }
    }
}

private let sysmonMain: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let sysmon = Unmanaged<Sysmon>.fromOpaque(arg!).takeRetainedValue()
    sysmon.run()
}
