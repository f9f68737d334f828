import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// RuntimeCore.swift: what one runtime shares between its workers, and the
// paths that touch all of them: spawn and wake from outside, deadlock
// detection, cancellation and shutdown.
//
// ## Where a woken thread goes
//
// `schedule` sends a wake made on one of this runtime's workers to that
// worker (`Worker.wakeNext`: the run-next slot, Worker+RunQueue.swift; or,
// during a netpoll, the batch, Worker+Netpoll.swift). A wake from anywhere
// else goes to the injector of the node whose worker spawned the thread
// (`registryShard`), then `Idle.notifyWork`. A spawn from a plain OS thread
// (`submitExternal`) goes to the injector of the node of the CPU the caller
// runs on (`externalNode`, Injector.swift). Green threads keep the core
// alive through their worker's `CoreAnchor` (CoreAnchor.swift), not by
// retaining it.
//
// ## Deadlock detection
//
// The problem: an OS thread blocked in `Runtime.run` or `JoinHandle.join`
// waits for a green thread that nothing will ever wake. Only the runtime
// can see that, and only when *everything* is quiet. `mayBeDeadlocked`
// holds when detection is on and the runtime is not closing, every active
// worker (configured ones and the spares in use, SpareWorker.swift) is in
// the sleeper list, nothing is visible in any queue, no timer is pending,
// no green thread waits on an fd, in `GreenThread.blocking` or in
// `GreenThread.await` (those wait for the outside world), and at least one
// OS thread is in a registered wait (`beginExternalWait`, which wakes a
// sleeping worker when the rest holds, so that the last one re-checks). Comparing `sleeping` with
// `activeWorkers`, not with the configured count, keeps a worker stuck in a
// blocking call, beside its sleeping replacement, from passing for
// "everyone asleep".
//
// The last worker to sleep sees this, records `activityEpoch()` (every
// worker's switch and spawn counters plus the outside spawns and wakes) and
// sleeps only `deadlockConfirmNanos`. If it has slept that whole delay with
// the condition still true and the epoch unchanged, it calls
// `reportDeadlock`. A shorter sleep confirms nothing and is not taken for
// one: epoll_wait also ends for an edge nobody waits for, or a signal, and
// a check at that moment would report a deadlock whenever an OS thread is a
// few milliseconds from sending. Only waits still pending count: an OS
// thread already woken stays registered until it runs again, which on a
// busy machine may come after everything else went quiet. `reportDeadlock`
// collects the pending waiters and checks the condition and the epoch once
// more before waking them, so a wait registered after the confirmation
// (its thread spawned first, which moved the epoch) is left alone. A report is a
// `DeadlockReport` of every parked thread's `WaitReason`, stored, and every
// registered OS-thread waiter woken with `.deadlock`, so `join` throws
// `RuntimeError.deadlock`. The parked green threads stay parked. The
// confirmation delay filters transients, such as an OS thread about to
// spawn or wake something: reporting at the first quiet moment would give
// a false report whenever an outside thread is a few microseconds late.
//
// What it cannot see: an OS thread outside any runtime call that will later
// send or spawn (after the delay, a false report); a deadlock among some
// green threads while others run (as in Go); OS threads blocked in channel
// or Sync operations, which register no wait (they neither trigger a report
// nor receive one).
//
// ## Cancellation
//
// `cancel` stores the flag (sequentially consistent), then reads
// `cancellableWait` and the armed ticket; a parking thread arms its ticket,
// then reads the flag (Park.swift). Dekker: at least one side sees the
// other, so a cancel never misses a wait that began before it. Last, it
// cancels the children of every group the thread has open, and so on down
// (Groups/OpenGroups.swift says why that cannot miss a group being opened).
//
// ## Shutdown
//
// Idempotent, and refused from one of the runtime's own green threads.
//
// 1. `closed` (and each worker's `closing`): outside spawns fail a
//    precondition, and threads that first run from then on start cancelled.
// 2. Until no thread is live (`liveCount`, spawned minus retired from the
//    per-worker counters, so queued threads never run count too) or
//    `shutdownGracePeriod` ends: cancel every registered thread and drain
//    every timer heap, waking each entry `.cancelled`, so every thread
//    unwinds through its own code (defers run, stacks come back); then
//    sleep 1 ms, up to 20 times, and repeat.
// 3. Drain the timer heaps again: stale entries retain their threads, and
//    those retain the core.
// 4. Stop and join sysmon (nothing activates a spare after that), then
//    `stopping` and `Interrupt.stop` on every worker, spares included, wake
//    the sleepers and the dormant spares. From here every switch returns to
//    the scheduling loop, so threads handing the CPU to each other directly
//    cannot keep a worker from exiting.
// 5. Join every started worker thread within one second in all: a worker
//    merely descheduled on a loaded machine must not pass for a stuck one.
// 6. If all were joined, every thread still registered is abandoned
//    (nothing will resume it): its stack is unmapped, what its frames retain
//    leaks, and a count goes to stderr; then every pooled stack is unmapped,
//    every cached fiber released and every worker's anchor dropped (breaking
//    the core → worker → anchor → core cycle), and the epoll fd closed.
// 7. If one was not joined, step 6 is skipped entirely. That worker may be
//    stuck for good, or descheduled between reading `interrupts` and
//    switching into a queued thread; either way it may still touch any
//    stack, its pools and its fds. Everything stays (said on stderr): a leak
//    instead of a use-after-free. It keeps an `unowned(unsafe)` reference to
//    the core, which therefore must outlive it: an abandoned fiber is never
//    released, and it retains the core through its anchor.

/// The shared state of one runtime: its workers and queues, and the
/// spawn, wake, deadlock and shutdown paths that touch all of them.
@usableFromInline
final class RuntimeCore: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `workers`, `sysmon` and `dumpListener` are written only in
    // init, before the threads that read them start (thread creation orders the
    // writes before their reads); `externalWaiters` and `lastDeadlock` are
    // guarded by `waitersLock`; every other field is immutable, atomic, or an
    // object that guards its own state.
    let configuration: Runtime.Configuration
    let topology: Topology
    let clock: RuntimeClock
    /// The configured workers, then the spares sysmon may activate
    /// (`baseWorkerCount..<workers.count`, see SpareWorker.swift).
    private(set) var workers: [Worker] = []
    /// The configured number of workers.
    let baseWorkerCount: Int
    /// The monitor thread; nil under a virtual clock or with both of its
    /// thresholds turned off.
    private(set) var sysmon: Sysmon?
    /// The thread that answers `Configuration.dumpSignal`; nil without one.
    private(set) var dumpListener: DumpListener?
    /// Whether sysmon runs (set before the workers, which read it).
    let isMonitored: Bool
    /// Whether yields go to per-worker yield queues (YieldQueue.swift):
    /// only when sysmon runs and membarrier works.
    let yieldQueues: Bool
    private let injectors: [Injector]
    let idle: Idle
    let registry: Registry
    /// Pooled stacks by home node (StackPool.swift): a stack goes back to
    /// the pool of the node its pages are on, whichever worker frees it.
    let stackPools: [SharedStackPool]
    /// Whether workers bind their stacks' memory to their node: a real
    /// topology (`.auto`) of more than one node on a kernel that lets this
    /// process allocate from more than one (Worker+Memory.swift).
    let bindsMemory: Bool
    let sharedFibers = SharedFiberCache()
    /// The netpoller: one epoll instance (created before the workers, which
    /// keep a reference).
    let poller = Poller()
    /// OS threads for `GreenThread.blocking` (started on first use).
    let blockingPool: BlockingPool

    let stopping = Atomic<Bool>(false)
    /// Set once shutdown begins: no new work from outside, and every green
    /// thread (including any spawned while draining) starts cancelled.
    let closed = Atomic<Bool>(false)
    let stacksMapped = Atomic<Int>(0)
    /// `configuration.maxGreenThreads`, or 0 for no limit; `liveThreads`
    /// counts only while it is nonzero (SpawnLimits.swift).
    let maxLive: Int
    let liveThreads = Atomic<Int>(0)
    /// Tests only: a nonzero errno makes `mapStack` fail as if the kernel
    /// had refused, to exercise the failure without exhausting the machine.
    let injectedStackMapErrno = Atomic<Int32>(0)
    #if DEBUG
    /// Fiber objects of this runtime still allocated: a leak check for
    /// tests (debug builds only: a shared counter would cost every spawn a
    /// contended read-modify-write).
    let fiberObjects = Atomic<Int>(0)
    #endif
    private let externalIDs = Atomic<UInt64>(0)
    /// Worker slots + 1: ID sequences are interleaved by this stride. A
    /// `let`, because `workers` is a `var` and reading it on every spawn
    /// would cost a dynamic exclusivity check.
    let idStride: UInt64
    let externalSpawns = Atomic<Int>(0)
    let externalWakes = Atomic<Int>(0)
    /// Green threads parked in `GreenThread.await`: they wait for a Task,
    /// the outside world, so deadlock detection holds off (GreenAwait.swift).
    let taskWaits = Atomic<Int>(0)
    /// Runs Tasks on the workers (Async/TaskExecutor.swift).
    let taskExecutor: GreenTaskExecutor
    let shutdownLock = SpinLock()
    let shutdownDone = Atomic<Bool>(false)

    /// OS threads blocked in `run` or `join`: told when the runtime deadlocks.
    let waitersLock = SpinLock()
    var externalWaiters: [ObjectIdentifier: Waker] = [:]
    var lastDeadlock: DeadlockReport?
    static let deadlockConfirmNanos: Int64 = 100_000_000

    init(configuration: Runtime.Configuration) {
        self.configuration = configuration
        maxLive = configuration.maxGreenThreads ?? 0
        // A green thread's stack overflow is reported by name (overflow.c).
        _ = gt_overflow_install()
        let n = configuration.workers
        topology = Topology(workers: n, mode: configuration.numa, pin: configuration.pinWorkers)
        clock = RuntimeClock(virtual: configuration.clock == .virtual)
        injectors = (0..<topology.nodeCount).map { _ in Injector() }
        stackPools = (0..<topology.nodeCount).map { _ in SharedStackPool() }
        bindsMemory = configuration.numa == .auto && topology.nodeCount > 1 && gt_numa_memory_node_count() > 1
        baseWorkerCount = n
        let monitored = configuration.clock == .real
            && (configuration.preemptionThreshold != nil || configuration.handoffThreshold != nil)
        isMonitored = monitored
        // Spares exist only where sysmon may hand off; each mirrors the
        // placement of configured worker `index % n` and is never pinned.
        let spares = monitored && configuration.handoffThreshold != nil ? max(2, n) : 0
        // A yield queue is invisible to other workers; only sysmon can take
        // it over from a worker stuck in one green thread, and only with
        // membarrier (YieldQueue.swift). Without both, yields use the deque.
        yieldQueues = monitored && gt_membarrier_register() == 0
        let total = n + spares
        idle = Idle(workerCount: n, capacity: total)
        taskExecutor = GreenTaskExecutor(idle: idle)
        blockingPool = BlockingPool(maxThreads: configuration.blockingThreads)
        registry = Registry(shardCount: total + 1)
        idStride = UInt64(total + 1)
        for i in 0..<total {
            workers.append(Worker(
                index: i, node: topology.nodeOfWorker[i % n], core: self,
                seed: (configuration.seed ?? gt_random_seed()) &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15,
                spare: i >= n))
        }
        // Each worker's victims: its mirror's steal order, with every
        // configured worker followed by its spares (a dormant spare's queues
        // are empty, so it costs a thief two loads).
        for w in workers {
            w.anchor = CoreAnchor(core: self)
            w.victims = topology.stealOrder(fromWorker: w.index % n).map { group in
                group.flatMap { b in
                    stride(from: b, to: total, by: n).map { Unmanaged.passUnretained(workers[$0]) }
                }
            }
        }
        for w in workers.prefix(n) { startThread(of: w) }
        if monitored {
            let sysmon = Sysmon(core: self,
                                preemptNanos: configuration.preemptionThreshold.map(Self.nanos),
                                handoffNanos: configuration.handoffThreshold.map(Self.nanos))
            self.sysmon = sysmon
            sysmon.start()
        }
        // Stamps taken at park are converted against this baseline.
        gt_ticks_calibrate_start()
        if let signal = configuration.dumpSignal { dumpListener = DumpListener(signal: signal, core: self) }
    }

    /// Starts a worker's OS thread (spares: at their first activation).
    func startThread(of w: Worker) {
        let arg = Unmanaged.passRetained(w).toOpaque()
        var handle: UInt64 = 0
        let rc = gt_thread_start(workerMain, arg, &handle)
        precondition(rc == 0, "GreenThreads: could not start a worker thread (errno \(-rc))")
        w.thread = handle
    }

    /// Whole nanoseconds of a positive duration, saturating.
    static func nanos(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        let ns = s.multipliedReportingOverflow(by: 1_000_000_000)
        let total = ns.partialValue.addingReportingOverflow(atto / 1_000_000_000)
        return ns.overflow || total.overflow ? Int64.max : total.partialValue
    }

    @inline(__always)
    func injector(_ node: Int) -> Injector { injectors[node] }

    /// The worker running the caller, if it belongs to this runtime.
    @inline(__always)
    var localWorker: Worker? {
        guard let w = Worker.current, w.coreAddress == Unmanaged.passUnretained(self).toOpaque() else { return nil }
        return w
    }

    // MARK: Spawning and waking

    /// Starts a green thread from any thread (`Runtime.run`).
    func spawn<T>(file: StaticString, line: UInt, _ body: @escaping @Sendable () throws -> T) -> TypedFiber<T> {
        if let w = Worker.calling(of: self) {
            return Worker.spawnFiber(on: w, name: nil, file: file, line: line, body)
        }
        let fiber = TypedFiber(core: self, name: nil, file: file, line: line, body: body)
        submitExternal(fiber)
        return fiber
    }

    /// Queues a green thread spawned by a thread that is not one of our
    /// workers, on the injection queue. (Green threads spawn through
    /// `Worker.spawnFiber`.)
    @usableFromInline
    func submitExternal(_ fiber: Fiber) {
        precondition(!closed.load(ordering: .acquiring),
                     "GreenThreads: spawn on a runtime that was shut down")
        // IDs from outside are the multiples of the stride: disjoint from
        // every worker's sequence.
        let sequence = externalIDs.add(1, ordering: .relaxed).newValue
        fiber.id = sequence &* idStride
        fiber.registryShard = workers.count
        if maxLive != 0 && !admit(fiber) { return }
        externalSpawns.add(1, ordering: .relaxed)
        // The scheduler's reference, dropped at retire.
        injectors[externalNode(sequence: sequence)].push(Unmanaged<Fiber>.passRetained(fiber))
        idle.notifyWork()
    }

    /// A fresh stack whose home is topology node `home`, its pages on
    /// kernel memory node `memoryNode` (< 0: wherever first touched).
    /// Throws `.outOfStackMemory` when the kernel refuses (SpawnLimits.swift).
    func mapStack(home: Int, memoryNode: Int32) throws(RuntimeError) -> gt_stack {
        var s = gt_stack()
        let injected = injectedStackMapErrno.load(ordering: .relaxed)
        let rc = injected != 0 ? -injected : gt_stack_alloc_on(configuration.stackSize, memoryNode, &s)
        if rc != 0 {
            throw .outOfStackMemory(StackMapFailure(
                errno: -rc, stackSize: configuration.stackSize,
                stacksMapped: stacksMapped.load(ordering: .relaxed),
                maxMapCount: StackMapFailure.currentMaxMapCount()
            ).description)
        }
        stacksMapped.add(1, ordering: .relaxed)
        s.home = Int32(home)
        return s
    }

    /// Queues a woken green thread: on the waker's own worker if it has one
    /// (run next, for a warm hand-off), else on the injection queue.
    func schedule(_ fiber: Fiber, woken: Bool) {
        let u = Unmanaged.passUnretained(fiber)
        // Not through `withLocalWorker`: forming its `Worker?` argument
        // retains and releases the worker, an atomic pair on every wake.
        let ours = Unmanaged.passUnretained(self).toOpaque()
        if let raw = gt_current_worker(), Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef({ w in
            guard w.coreAddress == ours else { return false }
            // A netpoll batch: queued, and the wake-ups issued per batch.
            if !w.collectPolled(u) { w.wakeNext(u) }
            return true
        }) {
            return
        }
        externalWakes.add(1, ordering: .relaxed)
        injectors[workers[fiber.registryShard % workers.count].node].push(u)
        idle.notifyWork()
    }

    func hasVisibleWork() -> Bool {
        for inj in injectors where !inj.isEmpty { return true }
        for w in workers where !w.deque.isEmpty || w.runNext.load(ordering: .acquiring) != 0 {
            return true
        }
        return hasQueuedJobs()
    }

    // MARK: Timers

    func earliestDeadline() -> Int64 {
        var m = Int64.max
        for w in workers { m = min(m, w.timers.nextDeadline.load(ordering: .acquiring)) }
        return m
    }

    /// Fires due timers of every worker: a busy worker's sleepers still
    /// wake on time when another worker is idle.
    func fireRemoteTimers(now: Int64) -> Int {
        var n = 0
        for w in workers { n += w.timers.fireExpired(now: now) }
        return n
    }

    // MARK: Cancellation

    /// Sets the flag and ends a cancellable wait the thread is parked in.
    func cancel(_ fiber: Fiber) {
        fiber.cancelled.store(true, ordering: .sequentiallyConsistent)
        // Pairs with the waiter's arm-then-check in `Park`: either it sees
        // the flag, or we see its armed ticket here.
        if fiber.cancellableWait.load(ordering: .sequentiallyConsistent),
           let ticket = fiber.armedTicket {
            Waker(target: fiber, ticket: ticket).wake(.cancelled)
        }
        // And what it spawned in its groups (Groups/OpenGroups.swift).
        fiber.cancelOpenGroups()
    }

    // MARK: Errors nobody joined

    func reportUnhandled(_ error: any Error, thread id: UInt64, name: String?) {
        if let handler = configuration.unhandledErrorHandler {
            handler(GreenThread.ID(rawValue: id), error)
        } else {
            let named = name.map { " \($0.debugDescription)" } ?? ""
            gt_write_stderr("GreenThreads: green thread #\(id)\(named) failed and was never joined: \(error)\n")
        }
    }

    // MARK: Statistics

    var stats: RuntimeStats {
        var s = RuntimeStats()
        var restored = 0
        s.workers = baseWorkerCount
        s.stealsByNode = topology.workersOfNode.map { RuntimeStats.NodeSteals(node: topology.nodeID(ofWorker: $0[0])) }
        for w in workers {
            s.spawned += w.counters.spawned.load(ordering: .relaxed)
            s.completed += w.counters.completed.load(ordering: .relaxed)
            let localSteals = w.counters.localSteals.load(ordering: .relaxed)
            let remoteSteals = w.counters.remoteSteals.load(ordering: .relaxed)
            s.localSteals += localSteals
            s.remoteSteals += remoteSteals
            s.stealsByNode[w.node].localSteals += localSteals
            s.stealsByNode[w.node].remoteSteals += remoteSteals
            s.parks += w.counters.parks.load(ordering: .relaxed)
            s.switches += (w.switchCount.load(ordering: .relaxed) &- 1) >> 1  // two bumps per switch, from 1
        }
        // Copy-backs first (acquire), then compactions: a compaction is
        // counted (release) before its thread can run, so every copy-back
        // seen here has its compaction seen below, and the difference is
        // never negative.
        for w in workers { restored += w.counters.restoredStacks.load(ordering: .acquiring) }
        for w in workers { s.stackCompactions += w.counters.compactedStacks.load(ordering: .acquiring) }
        s.stacksCompacted = s.stackCompactions - restored
        s.steals = s.localSteals + s.remoteSteals
        s.spawned += externalSpawns.load(ordering: .relaxed)
        s.live = s.spawned - s.completed
        s.stacksMapped = stacksMapped.load(ordering: .relaxed)
        s.numaNodes = topology.nodeCount
        s.numaNote = topology.note
        if let sysmon {
            s.handoffs = sysmon.handoffs.load(ordering: .relaxed)
            s.replacementWorkers = sysmon.activeSpares
            s.preemptionRequests = sysmon.preemptionRequests.load(ordering: .relaxed)
        }
        return s
    }
}

private let workerMain: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let worker = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
    worker.runLoop()
}
