import CContext
import Synchronization

// Worker.swift: the green-thread scheduler's worker and its scheduling loop.
//
// One `Worker` is one OS thread, pinned to a CPU when configured, that runs
// green threads (Go's M and P in one). Its parts, one idea per file:
//
//   Worker+Switch.swift    leaving one green thread for the next
//   Worker+RunQueue.swift  the owner's pick, the run-next slot, the ticks,
//                          deque overflow and the injector
//   Worker+Idle.swift      spinning and parking an idle worker
//   Worker+Steal.swift     whom an idle worker steals from: its own node
//                          first, then the others by distance
//   Worker+Netpoll.swift   handing out what a netpoll readied, as a batch
//   Worker+Stacks.swift    binding a stack at a thread's first run
//   Deque.swift, YieldQueue.swift, Injector.swift, Idle.swift
//                          the queues and the idle-worker bookkeeping
//
// ## The problem
//
// Green threads are multiplexed M:N over one worker per CPU. Two goals pull
// against each other. Every CPU should be busy while runnable work exists,
// which means spreading work and waking idle workers. And a runtime with
// nothing to do should cost nothing, nor should a hand-off between two
// threads cost a cross-core cache miss, which means letting workers sleep
// and keeping work where it was made. The run queues are distributed, so
// no worker knows the whole state, and the right moment to park a worker
// would need to know whether work is about to arrive.
//
// ## Rejected designs
//
// * One central run queue under a lock (Go before 1.1). Every spawn, wake
//   and pick takes the same cache line on every core. Here each worker has
//   its own queues; only work from plain OS threads and the overflow of a
//   full deque pass through a shared FIFO, one per node (Injector.swift).
// * Waking an idle worker for every green thread made runnable. Most
//   readied threads are the partner of the thread that readied them, and a
//   futex wake costs a syscall on both sides; the woken worker would mostly
//   find nothing. Waking none strands work. The spinning-worker protocol
//   below wakes at most one worker per burst and ramps up one at a time
//   while work keeps turning up.
// * Handing a woken thread to another (idle) worker. It splits a producer
//   from its consumer across cores, and every message then moves the
//   channel's cache lines between them. A thread woken on a worker runs next
//   on that worker (the run-next slot, Worker+RunQueue.swift).
// * A growable Chase–Lev deque. Growing means retiring a buffer a slow
//   thief may still read, which needs epoch or hazard-pointer reclamation.
//   The deque is fixed; a full one spills half to the injector (Deque.swift).
// * Returning to the scheduling loop on every switch. A yield or park would
//   be two transfers. The leaving thread picks the next one and transfers
//   straight into it (Worker+Switch.swift).
//
// ## Pick order
//
// `nextLocal` is the owner's pick, made on every switch: it never steals and
// reads the clock only at the injector tick. `tick` counts picks:
//
//   1. every 61st pick (`injectorTick`): this worker's due timers, a
//      netpoll if one is due (Worker+Netpoll.swift), then a batch from the
//      injector;
//   2. otherwise every 31st (`fairnessTick`): the oldest waiting item,
//      alternately from the deque and the yield queue, each falling back to
//      the other;
//   3. the run-next slot: a relaxed load, and an exchange only if occupied;
//   4. the deque, if two relaxed loads say it holds anything: the newest
//      (LIFO keeps fork-join work cache-hot), or the oldest for a yield;
//   5. the yield queue, oldest first.
//
// The ticks keep a LIFO hot loop (or two threads handing the run-next slot
// back and forth) from starving the injector and the deque's older items,
// and a deque that keeps refilling from starving the yielders. 61 and 31
// are coprime, so the two rarely coincide, and `nextTickDuty` holds the
// next multiple of either, so a pick pays one compare instead of two
// divisions. Go checks timers on every schedule; here a timer check every
// 8th pick costs every switch about 4% and does not make timers fire
// closer to their deadline, because a sleeping or spinning worker serves the
// due timers of busy ones (Idle.swift, "Timed sleep").
//
// A yielder runs after everything else runnable on its worker, the round
// robin a Go user expects of Gosched. So a yield takes the deque's oldest
// item, not its newest: what the yield queue overflowed went to the bottom
// of the deque, and the newest would hand the CPU back to the most recent
// yielder and starve everything older.
//
// When `nextLocal` finds nothing, `findRunnable` looks further, cheapest
// first: the injectors (this node's first, a batch at a time); the jobs of
// the runtime's `TaskExecutor` (Async/TaskExecutor.swift); due timers,
// this worker's and then anyone's; while threads wait on sockets, a stalled
// peer's queue (StalledPeers.swift), a CPU yield (CPUYield.swift) and a
// non-blocking netpoll; the stack compactions enlisted so far; then
// spinning, and last parking (Worker+Idle.swift).
//
// ## The spin/park handshake
//
// Idle workers follow Go's spinning-M scheme. A *spinning* worker has no
// work and is looking for some to steal; a *sleeping* one is parked on its
// futex (or in epoll_wait). `Idle` counts both. Two patterns meet:
//
//   Submitting work (`Idle.notifyWork`, after every publish that should
//   bring in an idle worker: a spawn, a displaced run-next occupant,
//   yielders exposed to thieves):
//     1. publish the work (deque push, run-next store, injector push);
//     2. full fence (StoreLoad);
//     3. read `spinning` and `sleeping`: if nobody spins and someone sleeps,
//        wake one (`spinning` 0 → 1 by CAS, and the woken worker inherits
//        that count).
//
//   Going from spinning to sleeping (`parkIdle`):
//     1. join the sleeper list (`sleeping` += 1), stop spinning
//        (`spinning` -= 1);
//     2. full fence (StoreLoad);
//     3. re-check every injector, deque and run-next slot
//        (`hasVisibleWork`), the earliest timer and `stopping`; sleep only
//        if all are quiet.
//
// No work is stranded. The two fences, F_S of a submitter S publishing W and
// F_P of a worker P going to sleep, are ordered in the single total order of
// sequentially consistent operations:
//
// * F_S before F_P: P's re-check, after F_P, sees W, and P does not sleep.
// * F_P before F_S: S's loads, after F_S, see P's registration and P's
//   decrement. If S sees `spinning == 0`, it wakes a sleeper, which starts
//   out spinning and searches every queue. If `spinning > 0`, each spinner
//   whose decrement S missed has its own fence after F_S, so the same two
//   cases apply to it; a spinner that finds work stops spinning and, if it
//   was the last, calls `notifyWork` itself (`found`). By induction over the
//   spinners, someone finds W.
//
// Each side stores and then loads; acquire and release order a store before
// later stores and a load before later loads, never a store before a later
// load, so both fences must be full. The pairs in the code:
//
// * the fence in `Idle.notifyWork` (and `notifyWork(surplus:)`) pairs with
//   the fence in `parkIdle` after `addSleeper` and `stopSpinning`;
// * `Idle.notifyWorkAfterSeqCstPublish`: the sequentially consistent
//   exchange that published a thread to the run-next slot takes the
//   submitter's fence's place (the argument is at that function);
// * `Worker.unpark` and `Poller.blockIdle`: a Dekker pair on the parker word
//   and `inPoll`, so a worker asleep in epoll_wait also gets the eventfd
//   (Net/Poller.swift's header, "Contract with the scheduling loop").
//
// The one publication without a notification is the quiet hand-off: a wake
// into an *empty* run-next slot (Worker+RunQueue.swift). It is not a W of
// the argument above; its guarantee is that the slot's owner is running and
// takes it at its next switch, and sysmon notifies on the owner's behalf if
// that switch does not come within a round (Sysmon.swift).
//
// ## Parking
//
// A parking worker sleeps until the earliest timer of any worker, so any
// sleeper doubles as the timer thread of busy workers. While it sleeps it
// returns stacks that went unused for a whole decay period (StackPool.swift)
// in slices, leaving as soon as work, a due timer or shutdown shows up. At
// most one idle worker sleeps in epoll_wait instead of on its futex
// (Net/Poller.swift). A worker woken by a notifier was taken off the sleeper
// list by it and holds the spinning count it was handed; one that timed out
// takes itself off, and if a notifier claimed it meanwhile, consumes the
// unpark on its way and takes that count. Under a virtual clock the last
// worker to fall idle advances the clock to the next deadline instead of
// sleeping (Clock.swift).

/// State only the worker's own OS thread touches. Kept in raw memory, not
/// in class properties: class `var`s pay a dynamic exclusivity check on
/// every access, and this is read on every switch.
struct WorkerLocal: ~Copyable {
    var current: Unmanaged<Fiber>?
    var pending: PendingAction = .none
    var pendingFiber: Unmanaged<Fiber>?
    var tick: UInt32 = 0
    /// The next `tick` that is a multiple of `Worker.fairnessTick` or
    /// `Worker.injectorTick`: one compare per pick instead of two divisions.
    var nextTickDuty: UInt32 = Worker.fairnessTick
    /// Choices a program can observe (which ready case a `select` takes).
    var rng: FastRandom
    /// Steal victims. Separate, because how often an idle worker tries to
    /// steal depends on wall-clock spinning; sharing one generator would
    /// make a seeded run's select choices depend on timing.
    var stealRng: FastRandom
    var isSpinning = false
    /// Set while this worker dispatches a netpoll batch: the green threads
    /// it readies are linked into `polled` (newest first, through
    /// `queueNext`) and counted, then queued and notified for once, as a
    /// whole batch (`distributePolled`, Worker+Netpoll.swift).
    var collectingPolled = false
    var polledCount = 0
    var polled: Unmanaged<Fiber>?
    /// When this worker last polled the netpoller (monotonic ns): a busy
    /// worker with queued work polls again only once this is
    /// `Worker.busyPollNanos` old (`serviceTick`).
    var lastPoll: Int64 = 0
    /// When this worker last gave its CPU away (`yieldCPUBeforePolling`).
    var lastCPUYield: Int64 = 0
    /// Peers' progress, for `rescueFromStalledPeer` (StalledPeers.swift).
    var peers = PeerWatch()
    var nextLocalID: UInt64 = 0
    var stacks = StackPool()
    /// Yielded green threads, behind everything else runnable here.
    var yields = YieldQueue()
    /// Sleeps enlisted for stack compaction (StackCompaction.swift).
    var compaction = StackCompactor(nil, virtualClock: true)
    var fibers = FiberCache()
    /// The worker thread's own stack: where the scheduling loop runs.
    var schedulerContext = gt_context()
}

/// What a worker has done, for `Runtime.stats`, `liveCount` and tests.
/// Each counter is written only by its worker, so a bump is a plain load
/// and store (`Worker.bump`), no read-modify-write; anyone reads them.
struct WorkerCounters: ~Copyable {
    let spawned = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    /// Steals from a peer of this worker's node, and from a worker of
    /// another node (Worker+Steal.swift).
    let localSteals = Atomic<Int>(0)
    let remoteSteals = Atomic<Int>(0)
    /// Idle sleeps (futex or epoll_wait).
    let parks = Atomic<Int>(0)
    /// CPU yields before polling (CPUYield.swift).
    let cpuYields = Atomic<Int>(0)
    /// Sleeping stacks compacted, and compacted stacks copied back
    /// (StackCompaction.swift). Both stored with release: see
    /// `RuntimeCore.stats` for the reader's side.
    let compactedStacks = Atomic<Int>(0)
    let restoredStacks = Atomic<Int>(0)
    #if DEBUG
    /// The victims this worker probed and the steals it made, in order.
    let stealTrace = StealTrace()
    #endif
}

/// One OS thread that runs green threads: its deque, its "run next" slot,
/// its timers, its stack pool and its parking word.
@usableFromInline
final class Worker: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: what other threads touch is atomic (the
    // deque's ends, runNext, the counters sysmon reads) or locked (the
    // timer heap); `WorkerLocal` and the rest are the worker thread's own,
    // and `anchor` is written only at start and at shutdown, after the
    // worker thread has stopped.

    let index: Int
    let node: Int
    unowned(unsafe) let core: RuntimeCore
    /// Retained by the green threads this worker spawns (see `CoreAnchor`);
    /// dropped at shutdown to break the cycle through the core.
    @exclusivity(unchecked) var anchor: CoreAnchor?
    /// The parts of the core the hot paths use, held directly: reaching
    /// them through `core` would retain and release the core, and the
    /// core's reference count is one cache line every worker would fight
    /// over on every spawn and wake.
    let idle: Idle
    let registry: Registry
    let sharedStacks: SharedStackPool
    let sharedFibers: SharedFiberCache
    let homeInjector: Injector
    let injectors: [Injector]
    /// Identifies the owning runtime without touching it.
    let coreAddress: UnsafeMutableRawPointer
    /// Steal victims, nearest group first (set once all workers exist).
    var victims: [[Unmanaged<Worker>]] = []
    let local: UnsafeMutablePointer<WorkerLocal>
    let deque = WorkStealingDeque()
    /// The green thread woken most recently by this worker: run next, ahead
    /// of the deque, so a producer and the consumer it wakes hand off without
    /// a trip through the queue (Go's runnext, Tokio's LIFO slot). Thieves
    /// may take it when the deque is empty.
    let runNext = Atomic<UInt>(0)
    /// Whether a wake into an empty run-next slot may skip the idle
    /// notification (see `wakeNext`): only where sysmon watches for a
    /// worker that holds on to woken threads without switching.
    let quietHandOff: Bool
    let timers: TimerHeap
    let clock: RuntimeClock
    let parker: UnsafeMutablePointer<gt_parker>
    /// The runtime's netpoller (see Net/Poller.swift).
    let poller: Poller
    /// Set while this worker sleeps in epoll_wait rather than on `parker`:
    /// `unpark` must then also signal the poller's eventfd.
    let inPoll = Atomic<Bool>(false)
    /// Where this worker's netpolls put their events.
    let pollEvents = PollEvents.allocate()
    /// A copy of the runtime's stop flag, read on every switch without
    /// touching (and retaining) the core.
    let stopping = Atomic<Bool>(false)
    /// A copy of the runtime's `closed` flag: threads that first run after
    /// shutdown began start out cancelled.
    let closing = Atomic<Bool>(false)
    /// Whether the runtime has `maxGreenThreads` (a copy of `core.maxLive
    /// != 0`, read on every spawn and exit without touching the core).
    let limitsLive: Bool
    var thread: UInt64 = 0

    // Sysmon and hand-off (Sysmon.swift, SpareWorker.swift, Preemption.swift).
    /// Requests that `switchAway` checks with one relaxed load
    /// (`Interrupt` bits: stop, retire, preempt).
    let interrupts = Atomic<UInt8>(0)
    /// True while this worker is inside a green thread (set around the
    /// scheduling loop's transfer): what sysmon's stall check watches.
    let runningGreen = Atomic<Bool>(false)
    /// A replacement worker, started by sysmon while a worker is stuck.
    let isSpare: Bool
    /// `SpareState` of a spare; written by sysmon (active) and the spare (dormant).
    let spareState = Atomic<UInt8>(0)
    /// Where a dormant spare waits for sysmon: separate from `parker`, so a
    /// stale activation can never pass for an `Idle` wake-up.
    let spareParker: UnsafeMutablePointer<gt_parker>

    let counters = WorkerCounters()
    /// Jobs of Tasks that prefer the runtime's executor, run by the
    /// scheduling loop between green threads (Async/TaskExecutor.swift).
    let jobs = JobQueue()
    let taskExecutor: GreenTaskExecutor
    /// Whether this worker gives its CPU away before polling (CPUYield.swift).
    let yieldsCPU: Bool
    /// Bumped when a switch starts and again when a green thread's code is
    /// entered: even exactly while a green thread's code runs here, odd
    /// while the owner switches or runs its scheduling loop (and so may
    /// change its yield queue: the owner's half of the hand-over to
    /// sysmon, YieldQueue.swift). Twice the number of switches, plus one.
    let switchCount = Atomic<Int>(1)
    /// `YieldClaim`: sysmon taking over the yield queue (YieldQueue.swift).
    let yieldClaim = Atomic<UInt8>(0)

    /// Every 61st pick serves the injection queue first and every 31st the
    /// oldest local item, so neither can starve behind a LIFO hot loop.
    static let injectorTick: UInt32 = 61
    static let fairnessTick: UInt32 = 31

    init(index: Int, node: Int, core: RuntimeCore, seed: UInt64, spare: Bool = false) {
        self.index = index
        self.node = node
        isSpare = spare
        yieldsCPU = core.topology.workersCoverEveryCPU
        quietHandOff = core.isMonitored
        limitsLive = core.maxLive != 0
        self.core = core
        idle = core.idle
        registry = core.registry
        sharedStacks = core.stackPools[node]
        sharedFibers = core.sharedFibers
        injectors = (0..<core.topology.nodeCount).map { core.injector($0) }
        homeInjector = core.injector(node)
        coreAddress = Unmanaged.passUnretained(core).toOpaque()
        clock = core.clock
        poller = core.poller
        timers = TimerHeap(clock: core.clock)
        taskExecutor = core.taskExecutor
        local = .allocate(capacity: 1)
        local.initialize(to: WorkerLocal(rng: FastRandom(seed: seed), stealRng: FastRandom(seed: seed ^ 0x5851_F42D_4C95_7F2D)))
        gt_context_init_base(&local.pointee.schedulerContext)
        local.pointee.compaction = StackCompactor(core.configuration.stackCompaction, virtualClock: clock.isVirtual)
        // Only where sysmon can take a stuck worker's ring over; otherwise
        // it holds nothing and every yield goes to the deque.
        local.pointee.yields = YieldQueue(enabled: core.yieldQueues)
        parker = .allocate(capacity: 1)
        gt_parker_init(parker)
        spareParker = .allocate(capacity: 1)
        gt_parker_init(spareParker)
        if spare { spareState.store(SpareState.dormant.rawValue, ordering: .relaxed) }
    }

    deinit {
        local.deinitialize(count: 1)
        local.deallocate()
        parker.deallocate()
        spareParker.deallocate()
        pollEvents.deallocate()
    }

    @inline(__always)
    static func bump(_ counter: borrowing Atomic<Int>) {
        counter.store(counter.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    // MARK: Current worker

    /// The worker running the calling code, if any. Read through an
    /// out-of-line C call each time: after a switch the caller may be on
    /// another thread.
    @inline(__always)
    static var current: Worker? {
        guard let raw = gt_current_worker() else { return nil }
        return Unmanaged<Worker>.fromOpaque(raw).takeUnretainedValue()
    }

    /// The worker thread's body: find a green thread, run it until it
    /// switches back here, repeat; return when the runtime stops.
    func runLoop() {
        gt_set_current_worker(Unmanaged.passUnretained(self).toOpaque())
        // Lets switches skip the exclusivity exit hook when nothing is open.
        _ = gt_exclusivity_attach_thread()
        // Lets switches carry task-local bindings with their green thread.
        _ = gt_task_locals_attach_thread()
        if let cpu = core.topology.pinnedCPU(ofWorker: index) {
            _ = gt_worker_pin(Int32(cpu))
        }
        settleMemoryOnNode()
        let l = local
        while true {
            // Jobs queued here while green threads ran (`Interrupt.jobs`
            // sent the last switch back here) go before the next thread.
            if interrupts.load(ordering: .relaxed) & Interrupt.jobs != 0 { runJobs() }
            guard let f = findRunnable() else { break }
            l.pointee.current = f
            unowned(unsafe) let fiber = f.takeUnretainedValue()
            fiber.runState.store(Fiber.RunState.running.rawValue, ordering: .relaxed)
            runningGreen.store(true, ordering: .relaxed)
            let me = Unmanaged.passUnretained(self).toOpaque()
            // nil: no stack could be had, and the thread ended unrun.
            guard let to = contextToRun(fiber) else {
                runningGreen.store(false, ordering: .relaxed)
                continue
            }
            _ = gt_context_transfer_passing(&l.pointee.schedulerContext, to, me)
            runningGreen.store(false, ordering: .relaxed)
            Worker.finishSwitch(inGreenThread: false, on: me)
        }
        local.pointee.compaction.dropAll()
        gt_set_current_worker(nil)
    }

    /// Finds the next green thread to run, spinning and then sleeping when
    /// there is none. Returns nil only when the runtime stops.
    private func findRunnable() -> Unmanaged<Fiber>? {
        while true {
            if stopping.load(ordering: .acquiring) { return nil }
            if isSpare, !continueAsSpare() { return nil }
            if let f = nextLocal() { return found(f) }
            if let f = takeInjected() { return found(f) }
            if runJobs() { continue }
            if timers.fireExpiredIfAny() > 0 { continue }
            // Due timers of other workers too: their owners may be busy or
            // asleep, and parkIdle would not sleep past a due deadline.
            if core.earliestDeadline() <= clock.now(), core.fireRemoteTimers(now: clock.now()) > 0 { continue }
            // Ready fds, without blocking (the woken threads land in our
            // run-next slot).
            if poller.worthPolling {
                let now = gt_now_ns()
                if let f = rescueFromStalledPeer(now: now) { return found(f) }
                yieldCPUBeforePolling(now: now)
                if pollReady(keepOne: true) > 0 { continue }
            }
            // Out of work: compact the sleeps enlisted so far (any that were
            // woken meanwhile land in our run-next slot).
            if hasCompactionCandidates {
                flushCompaction()
                continue
            }

            // Under a virtual clock, once every other worker sleeps the only
            // thing left to wait for is a timer: go straight to parkIdle,
            // which advances the clock (spinning would cost real time per
            // simulated event).
            if !local.pointee.isSpinning, !(clock.isVirtual && idle.sleeping.load(ordering: .relaxed) >= core.workers.count - 1),
               idle.tryStartSpinning() {
                local.pointee.isSpinning = true
            }
            if local.pointee.isSpinning {
                if let f = spinForWork() { return found(f) }
                if !jobs.isEmpty { continue }  // the spin took jobs: run them
                if core.fireRemoteTimers(now: clock.now()) > 0 { continue }
            }
            parkIdle()
        }
    }
}
