import CContext
import Synchronization

/// A spare's life cycle. Sysmon moves a spare from `dormant` to `active`
/// (Go's syscall hand-off: a new M takes the stuck M's place); the spare
/// moves itself back once told to retire.
enum SpareState: UInt8 {
    /// A configured worker; never changes.
    case notSpare = 0
    /// Not taking part in scheduling: no green thread, empty queues, not in
    /// `Idle`'s counts; its thread (if ever started) waits on `spareParker`.
    case dormant = 1
    /// A full worker: counted in `Idle.activeWorkers`, runs, steals, sleeps.
    case active = 2
}

/// How a replacement worker joins and leaves the scheduler.
///
/// With hand-off on, the core builds `max(2, workers)` spares up front
/// (indices `baseWorkerCount..<workers.count`) but starts no thread for
/// them: a spare's thread starts at its first activation and parks dormant
/// between uses. A spare is a full worker (deque, run-next slot, timer
/// heap, stack pool, parker); spare `i` mirrors configured worker `i % n`
/// for its node and steal order, and is never pinned. Because every spare
/// exists from the start, the fixed arrays never grow under concurrent
/// readers: the steal victims (a dormant spare's empty deque costs a thief
/// two loads), the registry shards, and every loop over the workers. A
/// spare can itself stall and be replaced; when every spare is in use,
/// stalled workers wait.
///
/// Invariants (when and why sysmon hands off: Sysmon.swift's header):
/// * Only sysmon activates a spare, and only the spare deactivates itself,
///   from its scheduling loop (no green thread on its stack), after moving
///   everything in its deque, run-next slot and yield queue to the injector,
///   and its jobs to the executor's injector.
/// * `Idle.activeWorkers` counts exactly the configured workers plus the
///   active spares; a dormant spare is neither sleeping nor spinning.
/// * A dormant spare's timers stay in its heap, which every worker's timer
///   scan covers; its deque is empty, so stealing from it finds nothing.
/// * Activation: count up, then `active` (release), then start or unpark;
///   retirement: queues empty, count down, then `dormant` (release, paired
///   with sysmon's acquire load).
/// * A dormant spare waits on `spareParker`, never on `parker`: a stale
///   wake-up token on the `Idle` parker would pass for a wake-up and
///   corrupt the spinning count.
/// * Workers running green code number at most the configured count plus
///   the stalled ones, and are back to the configured count once those
///   switch again.
extension Worker {
    /// Called by a spare at the top of its search for work: returns
    /// at once unless sysmon asked it to retire; then retires, waits
    /// dormant until sysmon activates it again, and returns true (or false
    /// once the runtime stops).
    @inline(__always)
    func continueAsSpare() -> Bool {
        if interrupts.load(ordering: .relaxed) & Interrupt.retire == 0 { return true }
        return retireAndWait()
    }

    @inline(never)
    private func retireAndWait() -> Bool {
        var lastSpinner = false
        if local.pointee.isSpinning {
            local.pointee.isSpinning = false
            lastSpinner = idle.stopSpinning()
        }
        // Compact the sleeps enlisted here now: a dormant spare would hold
        // them resident until sysmon needs it again. (A sleeper woken
        // meanwhile lands in our run-next slot, handed back just below.)
        flushCompaction()
        // A dormant spare may sleep for good: its pooled stacks give their
        // pages back now rather than after the decay period (StackPool).
        while !local.pointee.stacks.trim(now: gt_now_ns(), decay: 0), !stopping.load(ordering: .relaxed) {}
        let handedBack = handBackQueued()
        #if DEBUG
        // Only this thread queues here (a thief only takes), so what
        // `handBackQueued` emptied stays empty: the invariant dormancy
        // rests on, checked where a stranded thread or job would begin.
        precondition(runNext.load(ordering: .relaxed) == 0 && deque.isEmpty && jobs.isEmpty
                     && local.pointee.yields.isEmpty,
                     "GreenThreads: a retiring replacement worker still holds queued work")
        #endif
        interrupts.bitwiseAnd(~Interrupt.retire, ordering: .relaxed)
        idle.activeWorkers.subtract(1, ordering: .sequentiallyConsistent)
        // Release: sysmon's acquire load of `dormant` sees the queues empty
        // and the count already down before it may activate us again.
        spareState.store(SpareState.dormant.rawValue, ordering: .releasing)
        // Also when we were the last active worker awake: the sleepers
        // counted us and did not watch for a deadlock; one must look again.
        // And whenever sockets are in use: we may have been the one that
        // watched them (the poller role), while the others sleep on their
        // futexes; one must come round to take the role.
        if handedBack > 0 || lastSpinner || core.mayBeDeadlocked() || poller.inUse.load(ordering: .relaxed) {
            idle.notifyWork()
        }
        while spareState.load(ordering: .acquiring) != SpareState.active.rawValue {
            if stopping.load(ordering: .acquiring) { return false }
            _ = gt_parker_park(spareParker, -1)
        }
        return !stopping.load(ordering: .acquiring)
    }

    /// Moves the run-next slot, the whole deque and the yield queue (a
    /// yielder that came back to the loop to let us retire lands there) to
    /// this node's injector, and the jobs queue to the executor's injector,
    /// where any worker finds them. Returns how many moved.
    ///
    /// The jobs matter as much as the green threads: `runJobs` runs one
    /// batch and the loop checks for retirement before the next, so a job
    /// that queued another on this worker (a Task resuming a Task) is still
    /// here. Left in a dormant spare's queue it is visible work
    /// (`hasQueuedJobs`) that only a spinning peer takes, and a runtime's
    /// lone configured worker never spins: it would find the job in every
    /// park's re-check and never sleep nor run it.
    private func handBackQueued() -> Int {
        var batch = FiberBatch()
        let next = runNext.exchange(0, ordering: .acquiring)
        if next != 0 { batch.append(next) }
        // Oldest first, so the injector keeps their order.
        while let bits = deque.stealOne() { batch.append(bits) }
        while let bits = local.pointee.yields.take() { batch.append(bits) }
        homeInjector.push(batch)
        var jobsMoved = 0
        while true {
            let n = jobs.moveHalf(to: taskExecutor.injector)
            if n == 0 { break }
            jobsMoved += n
        }
        return batch.count + jobsMoved
    }

    /// Sysmon: makes a dormant spare a full worker again, starting its
    /// thread the first time.
    func activateSpare() {
        idle.activeWorkers.add(1, ordering: .sequentiallyConsistent)
        spareState.store(SpareState.active.rawValue, ordering: .releasing)
        if thread == 0 {
            core.startThread(of: self)
        } else {
            gt_parker_unpark(spareParker)
        }
    }

    var isActiveSpare: Bool {
        isSpare && spareState.load(ordering: .acquiring) == SpareState.active.rawValue
    }
}
