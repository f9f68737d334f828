import CContext
import Synchronization

// Worker+RunQueue.swift: where a worker's runnable green threads wait, and
// the order it takes them in (the pick order: Worker.swift's header).
//
// A worker's runnable threads sit in three places, all owned by it:
// the run-next slot (one thread), the work-stealing deque (Deque.swift) and
// the yield queue (YieldQueue.swift). Only the deque and the run-next slot
// are visible to thieves. Queue entries are `Unmanaged<Fiber>` bit patterns
// and own no retain.
//
// ## The run-next slot
//
// A thread woken on a worker (`RuntimeCore.schedule` → `wakeNext`) goes to
// that worker's run-next slot and runs at its next switch, ahead of the
// deque: a producer and the consumer it wakes hand off on one core, with the
// channel's cache lines staying put (Go's runnext, Tokio's LIFO slot). The
// slot's previous occupant moves to the deque, where thieves can see it. A
// thief takes a victim's slot only when the victim's deque is empty, and
// only after the first 5 µs of its spin (Worker+Idle.swift): the slot
// usually holds a hand-off's partner that the owner runs within
// microseconds, and stealing it at once splits the pair across cores.
//
// Only the owner fills the slot and thieves only empty it, so a slot seen
// empty stays empty until the owner's store: filling an empty slot is a
// plain release store, not an exchange.
//
// ## Quiet hand-off
//
// A wake into an *empty* slot notifies no idle worker; only a wake that
// displaces an occupant (surplus work, now in the deque) calls
// `Idle.notifyWork`. The waker nearly always parks within nanoseconds (a
// send and then a receive, a mutex hand-over), so its own worker runs the
// woken thread. A worker woken instead would spin on this worker's run-next
// and deque cache lines, turning each of the owner's writes into a
// cross-core miss, and after the grace period steal the partner and split
// the pair. The risk is a waker that keeps running and strands the woken
// thread while another worker sleeps. Three things bound it:
//
// * `passingRunNext`: when a tick makes the owner run something else ahead
//   of an occupied slot, it notifies;
// * sysmon notifies for a worker that has not switched for a whole round
//   while its run-next slot or deque holds threads and nobody spins
//   (Sysmon.swift): within 20 µs when busy, ~10 ms after a quiet spell;
// * a spinning thief takes the slot after its grace period.
//
// The second needs sysmon, so a runtime without it (virtual clock, or both
// sysmon thresholds off) notifies on every wake; the slot's sequentially
// consistent exchange then stands in for `notifyWork`'s fence
// (`Idle.notifyWorkAfterSeqCstPublish`). What the quiet hand-off gives up:
// an idle worker is woken only once surplus appears (a spawn, a displaced
// occupant, sysmon), so a burst that follows a quiet hand-off may start on
// one worker until the wake of its first spawn lands.
//
// ## Overflow and the injector
//
// The deque is fixed in size (Deque.swift). When a push finds it full,
// `spill` moves the new item and the oldest half to this node's injector in
// one locked push of a `FiberBatch`, linked through `Fiber.queueNext`, so
// the batch allocates nothing. A worker taking from the injector takes a
// batch too (`takeInjected`: one to run, up to 64 more into its deque, no
// more than half the deque's capacity), so spilled work comes back at
// deque speed, and a refilling worker does not fight a spilling one for the
// lock once per item. A worker drains its own node's injector first; it
// takes from another node's only once its own node is dry (its own deque
// and every peer's on the node empty), nearest node first and one thread at
// a time, as a steal across nodes would (Worker+Steal.swift). A busy
// worker's injector tick therefore serves its own node's injector only.

extension Worker {
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
    /// and split the pair (pingpong at 2 workers would take twice as long
    /// as at 1). Only a displaced occupant is surplus work worth a wake-up. A waker
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
    /// `notifyWork` would add two instructions to every switch.
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
        for _ in 0..<(deque.capacity / 2) {
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
        hasStealableWork || !local.pointee.yields.isEmpty
    }

    /// Whether another worker could take something from here: the run-next
    /// slot or the deque. Any thread (sysmon asks about stalled workers);
    /// the yield queue is left out, being plain memory that only its owner,
    /// or sysmon under its claim, may read (YieldQueue.swift).
    @inline(__always)
    var hasStealableWork: Bool {
        runNext.load(ordering: .relaxed) != 0 || !deque.isEmpty || !jobs.isEmpty
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
        if l.pointee.tick == l.pointee.nextTickDuty, let f = runTickDuty() { return f }
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
    private func runTickDuty() -> Unmanaged<Fiber>? {
        let tick = local.pointee.tick
        Self.scheduleTickDuty(local)
        let f = tick % Self.injectorTick == 0 ? serviceTick() : takeOldestWaiting(round: tick / Self.fairnessTick)
        return f.map(passingRunNext)
    }

    /// Sets `nextTickDuty` to the next multiple of either tick after `tick`.
    static func scheduleTickDuty(_ l: UnsafeMutablePointer<WorkerLocal>) {
        let tick = l.pointee.tick
        let ahead = min(injectorTick - tick % injectorTick, fairnessTick - tick % fairnessTick)
        l.pointee.nextTickDuty = tick &+ ahead
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
        noticeInjectedJobs()
        return takeInjected()
    }

    /// This node's injection queue first (up to `max` threads); another
    /// node's only when this node is dry, one thread (Worker+Steal.swift).
    @inline(__always)
    func popInjected(max: Int = 1) -> Unmanaged<Fiber>? {
        if let f = homeInjector.popBatch(max: max) { return f }
        return injectors.count > 1 ? popRemoteInjected() : nil
    }

    /// One thread from the nearest other node's injector that has any, if
    /// no deque of this node holds work (a peer's surplus is nearer than
    /// another node's, and a thief of this node takes it).
    @inline(never)
    private func popRemoteInjected() -> Unmanaged<Fiber>? {
        let groups = victims
        guard groups.count > 1 else { return nil }
        for v in groups[0] where v._withUnsafeGuaranteedRef({ !$0.deque.isEmpty }) { return nil }
        for rank in 1..<groups.count {
            guard let nearest = groups[rank].first else { continue }
            if let f = injectors[nearest._withUnsafeGuaranteedRef { $0.node }].popBatch(max: 1) { return f }
        }
        return nil
    }

    /// Takes a batch from the injection queue: one to run, the rest into
    /// the local deque, so a burst that spilled (or arrived from outside)
    /// comes back at deque speed rather than one lock round trip each.
    func takeInjected() -> Unmanaged<Fiber>? {
        let room = deque.capacity / 2 - deque.count
        guard let first = popInjected(max: 1 + max(0, min(room, 64))) else { return nil }
        let rest = first._withUnsafeGuaranteedRef { f in
            let rest = f.queueNext
            f.queueNext = nil
            return rest
        }
        pushChain(rest)
        return first
    }
}
