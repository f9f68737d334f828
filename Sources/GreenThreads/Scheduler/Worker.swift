import CContext
import Synchronization

/// What the code that resumes after a switch must do for the green thread
/// that just left the CPU. It cannot do these itself: until the switch has
/// saved its registers, another worker must not be able to resume it, and
/// a finished thread cannot free the stack it is standing on.
enum PendingAction: UInt8 {
    case none
    case requeue  // yield: to the local yield queue (YieldQueue.swift)
    case park     // commit the park (or queue it, if woken meanwhile)
    case retire   // finished: recycle the stack, drop the scheduler's +1
}

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
    var tickDuty: UInt32 = Worker.fairnessTick
    /// Choices a program can observe (which ready case a `select` takes).
    var rng: FastRandom
    /// Steal victims. Separate, because how often an idle worker tries to
    /// steal depends on wall-clock spinning; sharing one generator would
    /// make a seeded run's select choices depend on timing.
    var stealRng: FastRandom
    var isSpinning = false
    /// Set while this worker dispatches a netpoll batch: the green threads
    /// it readies go to the deque and are counted here, and the wake-ups
    /// for them are issued once, for the whole batch (`distributePolled`).
    var collectingPolled = false
    var polledCount = 0
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

/// One OS thread that runs green threads: its deque, its "run next" slot,
/// its timers, its stack pool and its parking word.
@usableFromInline
final class Worker: @unchecked Sendable {
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

    // Counters, written only by this worker (plain load+store), read by anyone.
    let spawnedCount = Atomic<Int>(0)
    let completedCount = Atomic<Int>(0)
    let stealCount = Atomic<Int>(0)
    let parkCount = Atomic<Int>(0)
    let cpuYieldCount = Atomic<Int>(0)
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
    let compactedCount = Atomic<Int>(0)
    let restoredCount = Atomic<Int>(0)

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
        self.core = core
        idle = core.idle
        registry = core.registry
        sharedStacks = core.sharedStacks
        sharedFibers = core.sharedFibers
        injectors = (0..<core.topology.nodeCount).map { core.injector($0) }
        homeInjector = core.injector(node)
        coreAddress = Unmanaged.passUnretained(core).toOpaque()
        clock = core.clock
        poller = core.poller
        timers = TimerHeap(clock: core.clock)
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

    // MARK: Local queue

    /// Queues a runnable green thread on this worker (owner only).
    @inline(__always)
    func pushLocal(_ fiber: Unmanaged<Fiber>) {
        let bits = UInt(bitPattern: fiber.toOpaque())
        if !deque.push(bits) { spill(bits) }
    }

    /// Queues a green thread this worker just woke in its run-next slot
    /// (whatever was there moves to the deque, where thieves can see it),
    /// and tells the idle workers about it when they should know.
    ///
    /// A quiet hand-off (Tokio's LIFO-slot rule): a wake into an *empty*
    /// slot notifies nobody. The waker usually parks within nanoseconds
    /// (a send then a receive, a mutex hand-over) and this worker runs the
    /// woken thread itself; a woken idle worker would only spin on this
    /// worker's cache lines and, after the grace period, steal the partner
    /// and split the pair (pingpong at 2 workers took twice as long as at
    /// 1). Only a displaced occupant is surplus work worth a wake-up. A waker
    /// that keeps running instead is caught by sysmon, which notifies for a
    /// worker that has not switched for a round while its slot is occupied;
    /// `passingRunNext` notifies when a switch runs something else first;
    /// and a spinning thief takes the slot after its grace period anyway.
    /// Without sysmon to back that up, every wake notifies.
    @inline(__always)
    func wakeNext(_ fiber: Unmanaged<Fiber>) {
        if quietHandOff {
            if pushRunNext(fiber) { idle.notifyWork() }
        } else {
            // Sequentially consistent: the exchange is the publish that
            // `notifyWorkAfterSeqCstPublish` relies on instead of a fence
            // (the same instruction as acquire-release on x86 and arm64).
            let old = runNext.exchange(UInt(bitPattern: fiber.toOpaque()), ordering: .sequentiallyConsistent)
            if old != 0, !deque.push(old) { spill(old) }
            idle.notifyWorkAfterSeqCstPublish()
        }
    }

    /// Puts `fiber` in the run-next slot. Returns true when that moved a
    /// previous occupant to the deque (the caller must then notify).
    @inline(__always)
    private func pushRunNext(_ fiber: Unmanaged<Fiber>) -> Bool {
        let bits = UInt(bitPattern: fiber.toOpaque())
        // Only the owner fills the slot; thieves only empty it. So a slot
        // seen empty stays empty until this store, which needs no
        // read-modify-write (release: publishes the thread to the thief's
        // or our own acquiring exchange).
        if runNext.load(ordering: .relaxed) == 0 {
            runNext.store(bits, ordering: .releasing)
            return false
        }
        let old = runNext.exchange(bits, ordering: .acquiringAndReleasing)
        if old == 0 { return false }  // a thief emptied it meanwhile
        if !deque.push(old) { spill(old) }
        return true
    }

    /// The owner is about to run `next` instead of the thread waiting in
    /// its run-next slot (an injector or fairness tick): that thread is
    /// surplus now, so an idle worker is told (a quiet hand-off assumed
    /// this worker would run it next). Out of line: inlined, its call to
    /// `notifyWork` cost every switch two instructions (callgrind, pingpong).
    @inline(never)
    private func passingRunNext(_ next: Unmanaged<Fiber>) -> Unmanaged<Fiber> {
        if quietHandOff, runNext.load(ordering: .relaxed) != 0 { idle.notifyWork() }
        return next
    }

    /// The deque is full: move half of it (the oldest) and the new item to
    /// the injection queue in one batch.
    @inline(never)
    private func spill(_ bits: UInt) {
        var batch = FiberBatch()
        batch.append(bits)
        for _ in 0..<(WorkStealingDeque.capacity / 2) {
            guard let stolen = deque.takeOldest() else { break }
            batch.append(stolen)
        }
        homeInjector.push(batch)
    }

    @inline(__always)
    static func fiber(_ bits: UInt) -> Unmanaged<Fiber> {
        // Never 0: every queue checks for emptiness before it hands out bits.
        Unmanaged<Fiber>.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)
    }

    /// Whether anything waits in this worker's run-next slot, deque or
    /// yield queue (owner only: the yield queue is).
    @inline(__always)
    var hasLocalWork: Bool {
        runNext.load(ordering: .relaxed) != 0 || !deque.isEmpty || !local.pointee.yields.isEmpty
    }

    /// The owner's fast pick: no stealing, no clock reads except at the
    /// injector tick. Used on every switch. Order: the periodic ticks, the
    /// run-next slot, the deque, and last the yield queue, so a yielder
    /// runs after everything else runnable here (round robin, what a Go
    /// user expects of Gosched).
    ///
    /// A yield takes the deque's *oldest* item instead of the newest: what
    /// the yield queue overflowed (or exposed to thieves) went to the
    /// bottom, and taking from the bottom would hand the CPU back to the
    /// most recent yielder and starve everything older.
    @inline(__always)
    func nextLocal(oldestFirst: Bool = false) -> Unmanaged<Fiber>? {
        let l = local
        l.pointee.tick &+= 1
        if l.pointee.tick == l.pointee.tickDuty, let f = tickDuty() { return f }
        if runNext.load(ordering: .relaxed) != 0 {
            let bits = runNext.exchange(0, ordering: .acquiring)
            if bits != 0 { return Self.fiber(bits) }
        }
        // Relaxed loads first: `pop` needs a full fence and `takeOldest` a
        // CAS even on an empty deque. The owner's own `bottom` is exact and
        // a stale `top` is only lower, so this never reads a non-empty
        // deque as empty.
        if !deque.isEmptyForOwner, let bits = oldestFirst ? deque.takeOldest() : deque.pop() {
            return Self.fiber(bits)
        }
        if let bits = l.pointee.yields.take() { return Self.fiber(bits) }
        return nil
    }

    /// The periodic part of `nextLocal` (the current tick is a multiple of
    /// `injectorTick` or `fairnessTick`), out of line to keep the common
    /// path short.
    @inline(never)
    private func tickDuty() -> Unmanaged<Fiber>? {
        let tick = local.pointee.tick
        Self.scheduleTickDuty(local)
        let f = tick % Self.injectorTick == 0 ? serviceTick() : takeOldestWaiting(round: tick / Self.fairnessTick)
        return f.map(passingRunNext)
    }

    /// Sets `tickDuty` to the next multiple of either tick after `tick`.
    static func scheduleTickDuty(_ l: UnsafeMutablePointer<WorkerLocal>) {
        let tick = l.pointee.tick
        let ahead = min(injectorTick - tick % injectorTick, fairnessTick - tick % fairnessTick)
        l.pointee.tickDuty = tick &+ ahead
    }

    /// The fairness tick's pick: the oldest item of the deque and of the
    /// yield queue in turn, each falling back to the other. The deque's
    /// oldest would otherwise starve behind a LIFO hot loop, and a yielder
    /// behind a deque that keeps refilling.
    private func takeOldestWaiting(round: UInt32) -> Unmanaged<Fiber>? {
        if round & 1 == 0, let bits = local.pointee.yields.take() { return Self.fiber(bits) }
        if let bits = deque.takeOldest() { return Self.fiber(bits) }
        if let bits = local.pointee.yields.take() { return Self.fiber(bits) }
        return nil
    }

    /// The injector tick's duties: due timers and the injection queue.
    private func serviceTick() -> Unmanaged<Fiber>? {
        timers.fireExpiredIfAny()
        // A busy worker still notices I/O readiness when no idle worker is
        // blocked in epoll_wait to collect it (woken threads land here).
        if poller.worthPolling, deque.isEmptyForOwner || gt_now_ns() - local.pointee.lastPoll >= Self.busyPollNanos {
            _ = pollReady(keepOne: false)
        }
        return takeInjected()
    }

    /// How often a busy worker whose deque still holds work polls the
    /// netpoller at its injector tick. The deque is LIFO for its owner: a
    /// batch polled on top of the last one runs first, and the older
    /// batch's threads wait behind every newer one (at 1,000 echo
    /// connections and 128-event batches, p99 went from 47 ms to 330 ms).
    /// So, as in Go (a busy P never polls; sysmon does, after 10 ms), a
    /// worker works through what it polled before it polls again, and
    /// falls back to this bound only when its deque never empties.
    static let busyPollNanos: Int64 = 10_000_000

    /// This node's injection queue first, then the others.
    @inline(__always)
    private func popInjected(max: Int = 1) -> Unmanaged<Fiber>? {
        if let f = homeInjector.popBatch(max: max) { return f }
        return injectors.count > 1 ? popRemoteInjected(max: max) : nil
    }

    @inline(never)
    private func popRemoteInjected(max: Int) -> Unmanaged<Fiber>? {
        for i in injectors.indices where i != node {
            if let f = injectors[i].popBatch(max: max) { return f }
        }
        return nil
    }

    /// Takes a batch from the injection queue: one to run, the rest into
    /// the local deque, so a burst that spilled (or arrived from outside)
    /// comes back at deque speed rather than one lock round trip each.
    private func takeInjected() -> Unmanaged<Fiber>? {
        let room = WorkStealingDeque.capacity / 2 - deque.count
        guard let first = popInjected(max: 1 + max(0, min(room, 64))) else { return nil }
        var next = first._withUnsafeGuaranteedRef { f in
            let rest = f.queueNext
            f.queueNext = nil
            return rest
        }
        while let f = next {
            next = f._withUnsafeGuaranteedRef { f in
                let rest = f.queueNext
                f.queueNext = nil
                return rest
            }
            pushLocal(f)
        }
        return first
    }

    // MARK: Switching

    /// Leaves the running green thread with `action` pending and runs the
    /// next local one directly (green-to-green, no trip through the
    /// scheduler stack), or the scheduling loop when there is none.
    /// Returns when the green thread is resumed, possibly on another worker.
    @inline(__always)
    func switchAway(_ action: PendingAction) {
        let l = local
        let from = l.pointee.current.unsafelyUnwrapped
        enterSwitch()
        // Only raw pointers may be live across the transfer: when `from` is
        // retiring, this frame is abandoned, and any retain held in it (even
        // a temporary one for a property read) would leak that object.
        let fromContext = from._withUnsafeGuaranteedRef { $0.context }
        // Once the runtime stops (or this spare must retire), every switch
        // goes back to the scheduling loop, so that green threads handing the
        // CPU to each other directly cannot keep a worker from exiting.
        let toLoop = interrupts.load(ordering: .relaxed) & Interrupt.toLoop != 0
        if !toLoop, let next = nextLocal(oldestFirst: action == .requeue) {
            // A yielder may join the yield queue before its context is
            // saved: nobody else can take it from there while this worker
            // switches (thieves never see the ring, and it is exposed or
            // handed to sysmon only after the switch). If the ring is full
            // or disabled, the yielder goes to the deque, after the switch.
            if action == .requeue, l.pointee.yields.push(UInt(bitPattern: from.toOpaque())) {
                from._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
            } else {
                l.pointee.pending = action
                l.pointee.pendingFiber = from
            }
            l.pointee.current = next
            let toContext = next._withUnsafeGuaranteedRef { n in
                n.runState.store(Fiber.RunState.running.rawValue, ordering: .relaxed)
                return contextToRun(n)
            }
            // The worker that resumes us hands itself over (it is the one we
            // then run on): no thread-local read after the switch.
            let resumer = gt_context_transfer_passing(fromContext, toContext, Unmanaged.passUnretained(self).toOpaque())
            Worker.finishSwitch(on: resumer.unsafelyUnwrapped)
        } else if action == .requeue && !toLoop {
            // Nothing else is runnable here (the pick above also served the
            // periodic duties: timers, netpoll, injector): the scheduling
            // loop would pick the yielder straight back, so it just goes on,
            // without two transfers for nothing.
            leaveSwitch()
            return
        } else {
            l.pointee.pending = action
            l.pointee.pendingFiber = from
            l.pointee.current = nil
            let resumer = gt_context_transfer_passing(
                fromContext, &l.pointee.schedulerContext, Unmanaged.passUnretained(self).toOpaque())
            Worker.finishSwitch(on: resumer.unsafelyUnwrapped)
        }
    }

    /// Runs the action the previous green thread left behind. Called first
    /// thing after every switch, on whichever worker we now are;
    /// `inGreenThread` is false only in the scheduling loop.
    @inline(__always)
    static func finishSwitch(inGreenThread: Bool = true, on worker: UnsafeMutableRawPointer = gt_current_worker().unsafelyUnwrapped) {
        // Guaranteed references throughout: workers and queued fibers
        // outlive every switch, and a strong local would cost a retain and
        // a release on every switch (a quarter of a yield, measured).
        Unmanaged<Worker>.fromOpaque(worker)._withUnsafeGuaranteedRef { w in
            let l = w.local
            let action = l.pointee.pending
            if action != .none {
                l.pointee.pending = .none
                let f = l.pointee.pendingFiber.unsafelyUnwrapped
                l.pointee.pendingFiber = nil
                switch action {
                case .requeue:
                    f._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
                    w.queueYielder(f)
                case .park:
                    // Release: the context the switch just saved is published to
                    // whoever readies the thread (their CAS acquires).
                    w.settleParked(f, from: .parking)
                case .retire:
                    w.retire(f)
                case .none:
                    break
                }
            }
            if inGreenThread { w.afterSwitch() }
        }
    }

    /// Ends a transient state of a parked thread (`parking` after its switch
    /// out, `compacting` after its stack was saved): `parked` (release: the
    /// saved context or stack is published to whoever readies it, whose CAS
    /// acquires), or, if a wake came meanwhile (`wakePending`), queued on
    /// our run-next slot (`wakeNext`).
    @inline(__always)
    func settleParked(_ f: Unmanaged<Fiber>, from state: Fiber.RunState) {
        let settled = f._withUnsafeGuaranteedRef { fiber in
            fiber.runState.compareExchange(
                expected: state.rawValue, desired: Fiber.RunState.parked.rawValue,
                successOrdering: .releasing, failureOrdering: .acquiring
            ).exchanged
        }
        if !settled {
            f._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
            wakeNext(f)
        }
    }

    @inline(__always)
    func notifyWork() {
        idle.notifyWork()
    }

    /// Ends the running green thread: the last thing on its stack.
    static func retireCurrent() -> Never {
        let raw = gt_current_worker().unsafelyUnwrapped
        // Guaranteed reference: no retain is taken in this frame, which is
        // never returned to.
        Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.switchAway(.retire) }
        preconditionFailure("GreenThreads: a finished green thread was resumed")
    }

    private func retire(_ f: Unmanaged<Fiber>) {
        let recyclable = f._withUnsafeGuaranteedRef { fiber in
            fiber.runState.store(Fiber.RunState.finished.rawValue, ordering: .releasing)
            // A fiber going to the cache keeps its registry entry.
            if !fiber.recyclable {
                registry.remove(fiber)
                fiber.isRegistered = false
            }
            recycle(fiber.takeStack())
            return fiber.recyclable
        }
        Self.bump(completedCount)
        // The scheduler's reference, taken at spawn: to the cache, or dropped.
        if recyclable { cacheFiber(f) } else { f.release() }
    }

    // MARK: Stacks

    /// The context to switch into, binding a stack on the first run and
    /// copying a compacted one back (every resume passes here).
    @inline(__always)
    private func contextToRun(_ fiber: Fiber) -> UnsafeMutablePointer<gt_context> {
        if !fiber.hasStack { bindStack(fiber) } else if fiber.compactedStack != nil { restoreStack(fiber) }
        return fiber.context
    }

    /// A thread's first run: its stack, and its entry in the registry.
    @inline(never)
    private func bindStack(_ fiber: Fiber) {
        fiber.bindStack(takeStack() ?? sharedStacks.take() ?? core.mapStack())
        if !fiber.isRegistered {
            registry.insert(fiber, shard: index)
            fiber.isRegistered = true
        }
        if closing.load(ordering: .acquiring) { fiber.cancelled.store(true, ordering: .relaxed) }
    }

    func takeStack() -> gt_stack? {
        if let s = local.pointee.stacks.take() { return s }
        if sharedStacks.take(upTo: StackPool.refillBatch, into: &local.pointee.stacks) {
            return local.pointee.stacks.take()
        }
        return nil
    }

    private func recycle(_ stack: gt_stack) {
        local.pointee.stacks.put(stack)
        if local.pointee.stacks.count > StackPool.spillAt {
            // Stacks enter the shared pool clean: nobody trims it, and after
            // a mass wake (compacted sleepers each faulted a page back in)
            // its stacks would keep their pages until reused.
            local.pointee.stacks.trimOldestHalf()
            local.pointee.stacks.spillHalf(into: sharedStacks)
        }
    }

    // MARK: The scheduling loop

    /// The worker thread's body: find a green thread, run it until it
    /// switches back here, repeat; return when the runtime stops.
    func runLoop() {
        gt_set_current_worker(Unmanaged.passUnretained(self).toOpaque())
        // Lets switches skip the exclusivity exit hook when nothing is open.
        _ = gt_exclusivity_attach_thread()
        if let cpu = core.topology.cpu(ofWorker: index), core.configuration.pinWorkers {
            _ = gt_thread_pin(Int32(cpu))
        }
        let l = local
        while let f = findRunnable() {
            l.pointee.current = f
            unowned(unsafe) let fiber = f.takeUnretainedValue()
            fiber.runState.store(Fiber.RunState.running.rawValue, ordering: .relaxed)
            runningGreen.store(true, ordering: .relaxed)
            let me = Unmanaged.passUnretained(self).toOpaque()
            _ = gt_context_transfer_passing(&l.pointee.schedulerContext, contextToRun(fiber), me)
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
                if core.fireRemoteTimers(now: clock.now()) > 0 { continue }
            }
            parkIdle()
        }
    }

    // MARK: Netpoll batches

    /// A non-blocking netpoll whose woken green threads are handed out as a
    /// batch (Go's netpoll + injectglist): all of them go to our deque, where
    /// thieves can take them, and idle workers are woken for the surplus.
    /// `keepOne`: the caller is about to run one of them itself (it is out
    /// of work); otherwise (a busy worker's periodic poll) all are surplus.
    /// Returns how many green threads it queued.
    @inline(never)
    func pollReady(keepOne: Bool) -> Int {
        local.pointee.collectingPolled = true
        local.pointee.lastPoll = gt_now_ns()
        poller.poll(into: pollEvents)
        return distributePolled(keepOne: keepOne)
    }

    /// Ends a collection begun by setting `collectingPolled`: wakes one idle
    /// worker per queued green thread we will not run next, up to the number
    /// asleep. One wake-up per readied thread (the default path) would pay a
    /// fence each and still wake at most one worker while any spins; one
    /// wake-up per batch would leave the other idle workers asleep while
    /// this one works through the whole batch alone.
    @inline(__always)
    func distributePolled(keepOne: Bool) -> Int {
        let l = local
        l.pointee.collectingPolled = false
        let n = l.pointee.polledCount
        l.pointee.polledCount = 0
        let surplus = keepOne ? n - 1 : n
        if surplus > 0 { idle.notifyWork(surplus: surplus) }
        return n
    }

    /// Queues a green thread readied during a netpoll batch (see
    /// `pollReady`). Returns false when no batch is being collected.
    @inline(__always)
    func collectPolled(_ fiber: Unmanaged<Fiber>) -> Bool {
        let l = local
        guard l.pointee.collectingPolled else { return false }
        pushLocal(fiber)
        l.pointee.polledCount += 1
        return true
    }

    /// How long a spinning worker keeps looking before it sleeps. A futex
    /// sleep and wake costs microseconds and a syscall on both sides; work
    /// that arrives in bursts (a spawn loop, a producer) usually comes back
    /// within this window, and while anyone spins, submitters wake nobody.
    static let spinNanos: Int64 = 50_000

    /// The spin window while green threads wait on sockets. Their work
    /// arrives through epoll, where an idle worker blocked in epoll_wait
    /// gets it as soon as a spinner would, so spinning mostly burns CPU that
    /// the rest of the machine (a client on the same cores) needs; a spinner
    /// is preempted instead of yielding. Measured on the echo benchmark (2
    /// workers, 100 connections, load generator on the same 2 cores): CPU
    /// per request 5.2–6.8 µs with the 50 µs window, 4.6–4.8 µs with 5 µs,
    /// and a quarter of the involuntary context switches.
    static let ioSpinNanos: Int64 = 5_000

    /// A victim's run-next slot is left alone for this long into a spin.
    /// It usually holds the partner of a hand-off (a consumer its producer
    /// just woke) that the owner will run within microseconds; stealing it
    /// at once splits the pair across cores and every message then crosses
    /// between them (Go waits ~3 µs for the same reason).
    static let runNextGraceNanos: Int64 = 5_000

    private func spinForWork() -> Unmanaged<Fiber>? {
        let start = gt_now_ns()
        var round = 0
        var takeRunNext = false
        while true {
            if let f = stealFromOthers(takeRunNext: takeRunNext) { return f }
            if let f = popInjected() { return f }
            if let f = nextLocal() { return f }
            round += 1
            for _ in 0..<min(round, 32) { gt_cpu_relax() }
            if round % 8 == 0 {
                if poller.worthPolling, pollReady(keepOne: true) > 0, let f = nextLocal() { return f }
                let spun = gt_now_ns() - start
                let window = poller.ioWaiters.load(ordering: .relaxed) > 0 ? Self.ioSpinNanos : Self.spinNanos
                if stopping.load(ordering: .relaxed) || spun > window { return nil }
                takeRunNext = spun > Self.runNextGraceNanos
            }
        }
    }

    /// Leaves the spinning state on finding work; the last spinner out wakes
    /// a replacement so that further work still gets found.
    @inline(__always)
    private func found(_ f: Unmanaged<Fiber>) -> Unmanaged<Fiber> {
        if local.pointee.isSpinning {
            local.pointee.isSpinning = false
            if idle.stopSpinning() { idle.notifyWork() }
        }
        return f
    }

    /// Steals from the other workers: this node's first, from a random
    /// start; then the other nodes. Takes one to run and up to half of the
    /// rest into the local deque.
    private func stealFromOthers(takeRunNext: Bool) -> Unmanaged<Fiber>? {
        for group in victims {
            let n = group.count
            if n == 0 { continue }
            let start = local.pointee.stealRng.next(below: n)
            for k in 0..<n {
                let found = group[(start + k) % n]._withUnsafeGuaranteedRef { victim in
                    victim === self ? nil : steal(from: victim, takeRunNext: takeRunNext)
                }
                if let found { return found }
            }
        }
        return nil
    }

    func steal(from victim: Worker, takeRunNext: Bool) -> Unmanaged<Fiber>? {
        guard let first = victim.deque.stealOne() else {
            // An empty deque but a run-next slot: take that instead (after
            // the grace period), so a green thread is never stranded
            // behind a busy owner.
            if takeRunNext, victim.runNext.load(ordering: .relaxed) != 0 {
                let bits = victim.runNext.exchange(0, ordering: .acquiring)
                if bits != 0 {
                    Self.bump(stealCount)
                    return Self.fiber(bits)
                }
            }
            return nil
        }
        Self.bump(stealCount)
        var extra = victim.deque.count / 2
        while extra > 0, let bits = victim.deque.stealOne() {
            pushLocal(Self.fiber(bits))
            extra -= 1
        }
        return Self.fiber(first)
    }

    /// Sleeps until notified of work or until the earliest timer anywhere.
    private func parkIdle() {
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
        if core.hasVisibleWork() || core.earliestDeadline() <= now || core.stopping.load(ordering: .acquiring) {
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
        while !local.pointee.stacks.trim(now: gt_now_ns(), decay: decay) {
            if core.hasVisibleWork() || core.earliestDeadline() <= clock.now() || core.stopping.load(ordering: .acquiring) {
                leaveSleepers()
                return
            }
        }
        Self.bump(parkCount)
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
        if let due = local.pointee.stacks.trimDue(decay: decay) {
            let untilTrim = max(0, due &- gt_now_ns())
            if timeout < 0 || untilTrim < timeout {
                timeout = untilTrim
                watchingForDeadlock = false
            }
        }
        let epoch = core.activityEpoch()
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
            if watchingForDeadlock, core.mayBeDeadlocked(), core.activityEpoch() == epoch {
                core.reportDeadlock()
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
    /// other's store (docs/ARCHITECTURE.md §12).
    func unpark() {
        gt_parker_unpark(parker)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if inPoll.load(ordering: .relaxed) { poller.signal() }
    }

    private func leaveSleepers() {
        if idle.removeSleeper(self) { return }
        // A notifier claimed us concurrently: consume its unpark and take
        // over the spinning count it handed us.
        while !gt_parker_park(parker, -1) {}
        local.pointee.isSpinning = !core.stopping.load(ordering: .acquiring)
    }
}
