// RuntimeCore+Ending.swift: how a runtime ends: deadlock detection (every
// green thread parked, nothing that could wake one) and shutdown. The
// design, with the confirmation step and the order of the shutdown steps,
// is in RuntimeCore.swift's header.
import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension RuntimeCore {
    // MARK: Deadlock detection

    func beginExternalWait(_ waker: Waker) {
        waitersLock.withLock { externalWaiters[ObjectIdentifier(waker.target)] = waker }
        // The last worker to fall asleep watches for a deadlock only if it
        // saw a waiter; one that fell asleep before we registered sleeps
        // without watching. Wake one to look again.
        if mayBeDeadlocked() { idle.notifyWork() }
    }

    func endExternalWait(_ waker: Waker) {
        waitersLock.withLock { _ = externalWaiters.removeValue(forKey: ObjectIdentifier(waker.target)) }
    }

    var deadlockReport: DeadlockReport? { waitersLock.withLock { lastDeadlock } }

    /// Everyone asleep, nothing queued, no timer pending, and an OS thread
    /// waiting on us: nothing inside the runtime can ever wake anything.
    func mayBeDeadlocked() -> Bool {
        guard configuration.deadlockDetection, !closed.load(ordering: .relaxed) else { return false }
        // Active workers: the configured ones plus replacement workers in
        // use (a stuck worker is not asleep, so its spare's sleep is not
        // taken for everyone's).
        guard idle.sleeping.load(ordering: .acquiring) == idle.activeWorkers.load(ordering: .acquiring) else {
            return false
        }
        guard !hasVisibleWork(), earliestDeadline() == Int64.max else { return false }
        // Threads parked on an fd, in a blocking call or on a Task wait for
        // the outside world, not for each other.
        guard poller.ioWaiters.load(ordering: .acquiring) == 0,
              blockingPool.inFlight.load(ordering: .acquiring) == 0,
              taskWaits.load(ordering: .acquiring) == 0 else { return false }
        // Only a wait nobody has claimed: an OS thread already woken (its
        // joined thread finished) stays registered until it runs again,
        // which on a busy machine can be long after everything went quiet.
        return waitersLock.withLock { externalWaiters.values.contains { $0.isPending } }
    }

    /// Changes whenever anything runs, is spawned or is woken from outside.
    func activityEpoch() -> Int {
        var sum = externalSpawns.load(ordering: .relaxed) &+ externalWakes.load(ordering: .relaxed) &+ jobsRun
        for w in workers {
            sum &+= w.switchCount.load(ordering: .relaxed) &+ w.counters.spawned.load(ordering: .relaxed)
        }
        return sum
    }

    /// Reports a deadlock confirmed over a whole quiet period that began
    /// at `epoch`: the registered OS-thread waiters still pending are woken
    /// with `.deadlock`. The condition is checked once more after they are
    /// collected, so that a wait registered after the confirmation (an OS
    /// thread that has since spawned something and waits on it: the spawn
    /// moves the epoch) is never woken for a deadlock it is not part of.
    func reportDeadlock(epoch: Int) {
        var entries: [DeadlockReport.Entry] = []
        registry.forEach { f in
            if f.state == .parked {
                entries.append(.init(thread: GreenThread.ID(rawValue: f.id), waitingFor: f.waitReason.description,
                                     name: f.name))
            }
        }
        entries.sort { $0.thread.rawValue < $1.thread.rawValue }
        let report = DeadlockReport(blocked: entries)
        let wakers: [Waker] = waitersLock.withLock { externalWaiters.values.filter(\.isPending) }
        guard !wakers.isEmpty, mayBeDeadlocked(), activityEpoch() == epoch else { return }
        waitersLock.withLock { lastDeadlock = report }
        for w in wakers { w.wake(.deadlock) }
    }

    // MARK: Shutdown

    /// 1. Refuse work from outside. 2. Cancel every green thread and end
    /// its wait, so each unwinds through its own code (defers run, stacks
    /// come back). 3. Once none is left, or the grace period ends, stop and
    /// join the workers. 4. Unmap every stack.
    func shutdown() {
        shutdownLock.lock()
        defer { shutdownLock.unlock() }
        if shutdownDone.load(ordering: .acquiring) { return }
        precondition(localWorker == nil,
                     "GreenThreads: shutdown called from one of the runtime's own green threads")
        closed.store(true, ordering: .sequentiallyConsistent)
        for w in workers { w.closing.store(true, ordering: .sequentiallyConsistent) }
        let grace = configuration.shutdownGracePeriod
        let deadline = gt_now_ns() + Int64(grace.components.seconds) * 1_000_000_000
            + Int64(grace.components.attoseconds / 1_000_000_000)
        while liveCount > 0 && gt_now_ns() < deadline {
            registry.forEach { cancel($0) }
            for w in workers { for waker in w.timers.drainAll() { waker.wake(.cancelled) } }
            var spins = 0
            while liveCount > 0 && spins < 20 && gt_now_ns() < deadline {
                var ts = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&ts, nil)
                spins += 1
            }
        }
        // Stale timers (lazily deleted) still hold their green threads, and
        // those hold this core: drop them so nothing outlives the runtime.
        for w in workers { for waker in w.timers.drainAll() { waker.wake(.cancelled) } }
        // Sysmon first: from here on nothing activates a spare.
        sysmon?.stop()
        stopping.store(true, ordering: .sequentiallyConsistent)
        for w in workers {
            w.stopping.store(true, ordering: .sequentiallyConsistent)
            w.interrupts.bitwiseOr(Interrupt.stop, ordering: .sequentiallyConsistent)
            if w.isSpare { gt_parker_unpark(w.spareParker) }
        }
        idle.wakeAll()
        // Workers leave their loop at the next switch. One still running a
        // green thread that never switches (a tight loop) cannot be joined:
        // it is left running, and so is its stack. A whole second, because
        // a worker that is merely descheduled on a loaded machine must not
        // be mistaken for a stuck one, and while one is not joined nothing
        // it might still touch is released (below).
        let joinDeadline = gt_now_ns() + 1_000_000_000
        var stuck = Set<Int>()
        for w in workers where w.thread != 0 {
            if gt_thread_join_timeout(w.thread, max(0, joinDeadline - gt_now_ns())) != 0 { stuck.insert(w.index) }
        }
        let abandoned = liveCount
        // No worker runs jobs any more: what is queued goes to the global
        // executor, and so does whatever is enqueued from now on.
        closeTaskExecutor()
        // Before any stack goes: a dump reads them. The signal's previous
        // action is back once no runtime listens for it.
        dumpListener?.stop()
        if stuck.isEmpty {
            releaseStacksAndCaches()
        } else {
            // A worker we could not join is not necessarily stuck for good:
            // one descheduled for the whole second on an overloaded machine
            // may be between reading `interrupts` and switching into a
            // queued thread, and one that is stuck may finish its thread and
            // push into its own stack pool at any moment. Unmapping a stack
            // or emptying a pool under it would be a use-after-free, so
            // every stack, cache and anchor stays: a leak, said on stderr,
            // instead of a crash.
            gt_write_stderr("GreenThreads: \(stuck.count) worker(s) still running a green thread that never yields; left running, with every stack\n")
        }
        if abandoned > 0 {
            gt_write_stderr("GreenThreads: shutdown abandoned \(abandoned) green thread(s) that ignored cancellation\n")
        }
        // No worker polls any more: close the epoll fd and eventfd (sockets
        // still open are forgotten by it: their next green-thread wait
        // registers them with that thread's runtime, and OS threads use
        // poll(2)), and let the blocking threads go. (An unjoined worker
        // might still poll: its fds stay open rather than be reused under it.)
        if stuck.isEmpty { poller.close() }
        blockingPool.shutdown()
        shutdownDone.store(true, ordering: .releasing)
    }

    /// The end of a shutdown whose workers were all joined: nothing can
    /// switch into a green thread any more, so the stacks of those that
    /// ignored cancellation can go (what their frames retain leaks), with
    /// every pooled stack and cached fiber. Cached fibers hold anchors, and
    /// through them this core: dropping them and the workers' anchors breaks
    /// the core → worker → anchor → core cycle.
    private func releaseStacksAndCaches() {
        registry.forEach { f in
            if f.state != .running && f.hasStack {
                f.discardCompactedStack()
                gt_context_destroy(f.context)
                var s = f.takeStack()
                if s.mapping != nil { gt_stack_free(&s); stacksMapped.subtract(1, ordering: .relaxed) }
            }
        }
        for w in workers {
            w.local.pointee.stacks.removeAll { s in
                gt_stack_free(&s)
                stacksMapped.subtract(1, ordering: .relaxed)
            }
        }
        for pool in stackPools {
            for var s in pool.removeAll() {
                gt_stack_free(&s)
                stacksMapped.subtract(1, ordering: .relaxed)
            }
        }
        for w in workers { w.local.pointee.fibers.removeAll() }
        sharedFibers.removeAll()
        for w in workers { w.anchor = nil }
    }

    /// Green threads spawned and not yet retired, queued ones included.
    var liveCount: Int {
        var n = externalSpawns.load(ordering: .relaxed)
        for w in workers {
            n += w.counters.spawned.load(ordering: .relaxed) - w.counters.completed.load(ordering: .relaxed)
        }
        return n
    }
}
