import CContext
import Synchronization

/// Compaction of sleeping stacks (where the stacks come from and how idle
/// ones are trimmed: StackPool.swift's header).
///
/// A green thread's stack cannot move (its frames hold absolute pointers
/// into it), but while it sleeps nobody reads it. So a worker copies the
/// used top, [saved sp, stack top), to the heap, and `MADV_DONTNEED`s the
/// whole usable range (mapping and guard page stay). Before the thread runs
/// again the bytes go back to the same addresses (`Worker.restoreStack`,
/// from `contextToRun`, the one place every resume goes through: a timer, an
/// early wake, cancellation, shutdown's unwinding, on whichever worker).
///
/// **Who owns the stack.** A sleep is only *enlisted* when it parks (the
/// fiber, its ticket, one retain). It is committed `parked` as usual and can
/// be woken as usual. Later (the worker's batch is full, or the worker runs
/// out of work) the worker *claims* each candidate with a CAS
/// `parked → compacting` (acquire: it sees the stack the switch saved, since
/// `finishSwitch` published it with release). A candidate that is no longer
/// `parked` (woken, running, parked again elsewhere) is skipped, and so is
/// one whose claim no longer holds the enlisted ticket (its sleep ended or a
/// different wait began: only a plain sleep publishes no pointer into its
/// stack). While `compacting`, the stack is the worker's: a wake that
/// arrives then finds `compacting`, CASes it to `wakePending` and returns
/// (`Fiber.ready`), so nobody queues a half-copied stack. When the copy and
/// the release are done the worker CASes `compacting → parked` (release: the
/// saved bytes and `compactedStack` reach whoever readies it, whose CAS
/// acquires); if that fails the state is `wakePending` and the worker
/// queues the thread itself, as `finishSwitch` does for a park that was
/// woken mid-switch.
///
/// **Batches.** `MADV_DONTNEED` on a multi-threaded process costs a TLB
/// shoot-down per call; `gt_stacks_discard` releases a whole batch with one
/// `process_madvise` (one flush) where the kernel allows it. Claiming late
/// also means no green code runs while the worker holds a stack: a worker
/// stuck in a long green thread delays nobody's wake-up, it only leaves its
/// (at most `batchSize`) candidates resident.
///
/// **Which waits.** Only `GreenThread.sleep` (`Park.wait(compactible:
/// true)`). A channel, select or Sync wait publishes a `Waiter` on its own
/// stack (Waiting/Waiter.swift), and a write into a released page would be
/// lost when the copy comes back. The same holds for user code: while a
/// green thread sleeps, no other thread may read or write its stack (a
/// pointer to a local handed elsewhere); `Runtime.StackCompaction`'s
/// documentation says so, and `stackCompaction: nil` turns compaction off.
/// A sleep is enlisted when it is at least `minimumSleep` long (50 ms by
/// default) and at least `minimumSleepers` timers (4,096) are pending in
/// the runtime, summed over the heaps' lock-free counts: below that the
/// pages at stake (16 MiB) are not worth the time, and at 50 ms a
/// compaction round trip is a small fraction of the sleep. A virtual clock
/// compacts nothing (a simulated hour may last a microsecond).
///
/// **When a worker flushes.** When its list is full (checked as the next
/// sleep enlists, so every earlier entry has finished switching out: its
/// `finishSwitch` ran on this thread first), whenever it runs out of work
/// (`findRunnable`, before spinning), and when a spare retires (a dormant
/// spare would keep its candidates resident). The copy back, in
/// `contextToRun` (Worker+Stacks.swift), costs one page fault for the
/// thread and one load of `compactedStack` per switch-in for every other.
///
/// **The kernel call.** `gt_stacks_discard` passes up to 64 ranges to one
/// `process_madvise(2)` on `PIDFD_SELF_PROCESS` (no fd is opened, so none
/// leaks or survives a fork); where the kernel refuses (ENOSYS, EBADF,
/// EINVAL, EPERM) it remembers that and calls `madvise` per stack. Most of
/// what remains per stack is freeing the page, which no batching removes.
/// Pool trimming (StackPool.swift) uses the same call.
///
/// **Accounting and shutdown.** A compacted stack stays mapped and bound to
/// its thread (`stats.stacksMapped` unchanged); `stacksCompacted` counts
/// the stacks compacted at the moment and `stackCompactions` all so far. A
/// worker leaving its loop drops its candidates (their retains); shutdown's
/// cancel wakes every sleeper, which is copied back like any other; an
/// abandoned thread's saved block is freed with its stack. `gt_stack_save` and
/// `gt_stack_restore` are the only code that touches another thread's
/// parked stack, so they are where sanitizer fiber support must copy
/// uninstrumented (stack.c, "Compaction of parked stacks").
struct StackCompactor: ~Copyable {
    /// Candidates per batch: one process_madvise, at most this many stack
    /// pages still resident per worker before compaction catches up.
    static let batchSize = 64

    struct Candidate {
        var fiber: Unmanaged<Fiber>  // retained while enlisted
        var ticket: UInt64
    }

    /// Sleeps shorter than this stay as they are; `Int64.max` turns
    /// compaction off (nil setting, or a virtual clock, where a simulated
    /// hour may pass in a microsecond of real time).
    let minimumSleepNanos: Int64
    let minimumSleepers: Int
    let candidates: UnsafeMutablePointer<Candidate>
    var count = 0
    /// Scratch for a flush: the claimed fibers and their stacks.
    let claimed: UnsafeMutablePointer<Unmanaged<Fiber>>
    let ranges: UnsafeMutablePointer<gt_stack>

    init(_ settings: Runtime.StackCompaction?, virtualClock: Bool) {
        if let settings, !virtualClock {
            minimumSleepNanos = RuntimeCore.nanos(settings.minimumSleep)
            minimumSleepers = settings.minimumSleepers
        } else {
            minimumSleepNanos = Int64.max
            minimumSleepers = Int.max
        }
        candidates = .allocate(capacity: Self.batchSize)
        claimed = .allocate(capacity: Self.batchSize)
        ranges = .allocate(capacity: Self.batchSize)
    }

    deinit {
        for i in 0..<count { candidates[i].fiber.release() }
        candidates.deallocate()
        claimed.deallocate()
        ranges.deallocate()
    }

    /// Forgets every candidate uncompacted (the worker is leaving its loop).
    mutating func dropAll() {
        for i in 0..<count { candidates[i].fiber.release() }
        count = 0
    }
}

extension Worker {
    /// Called by `Park` on a sleeping green thread just before it switches
    /// away (its state is `parking`, its timer armed): enlists the sleep for
    /// compaction if it is long enough and enough timers are pending.
    @inline(__always)
    func considerCompaction(_ fiber: Fiber, ticket: UInt64, deadline: Int64) {
        let minimum = local.pointee.compaction.minimumSleepNanos
        if minimum == Int64.max || deadline &- clock.now() < minimum { return }
        enlistForCompaction(fiber, ticket: ticket)
    }

    @inline(never)
    private func enlistForCompaction(_ fiber: Fiber, ticket: UInt64) {
        let l = local
        if l.pointee.compaction.minimumSleepers > 0 {
            var pending = 0
            for w in core.workers { pending += w.timers.pendingCount }
            if pending < l.pointee.compaction.minimumSleepers { return }
        }
        // The earlier candidates have all switched out (each one's
        // finishSwitch ran on this thread before anything else did); this
        // one has not, so it waits for the next batch.
        if l.pointee.compaction.count == StackCompactor.batchSize { flushCompaction() }
        l.pointee.compaction.candidates[l.pointee.compaction.count] =
            .init(fiber: Unmanaged.passRetained(fiber), ticket: ticket)
        l.pointee.compaction.count += 1
    }

    /// Whether candidates wait for a flush.
    @inline(__always)
    var hasCompactionCandidates: Bool { local.pointee.compaction.count > 0 }

    /// Compacts every candidate still asleep in its enlisted sleep: claim,
    /// copy out, release the pages of all of them at once, hand each back.
    /// Runs on this worker's thread, never on a candidate's stack.
    @inline(never)
    func flushCompaction() {
        let l = local
        let n = l.pointee.compaction.count
        if n == 0 { return }
        let candidates = l.pointee.compaction.candidates
        let claimed = l.pointee.compaction.claimed
        let ranges = l.pointee.compaction.ranges
        var k = 0
        for i in 0..<n {
            let c = candidates[i]
            c.fiber._withUnsafeGuaranteedRef { f in
                // Cheap pre-check: most candidates of a sleep-heavy batch are
                // still asleep; a woken one is skipped without a CAS.
                guard f.claim.load(ordering: .relaxed) == c.ticket,
                      f.runState.compareExchange(
                          expected: Fiber.RunState.parked.rawValue, desired: Fiber.RunState.compacting.rawValue,
                          successOrdering: .acquiring, failureOrdering: .relaxed
                      ).exchanged
                else { return }
                // Ours until settled. Still in the enlisted sleep? (A claim
                // won since the pre-check means a wake is on its way: it
                // will find `compacting`.)
                if f.claim.load(ordering: .acquiring) == c.ticket, f.compactedStack == nil, f.saveStack() {
                    claimed[k] = c.fiber
                    ranges[k] = f.stack
                    k += 1
                } else {
                    settleParked(c.fiber, from: .compacting)
                }
            }
        }
        if k > 0 {
            // Failure (it cannot fail for a mapped range) would only leave
            // the pages resident: the bytes come back either way.
            _ = gt_stacks_discard(ranges, Int32(k))
            // Counted before any of them can run (and be counted restored):
            // see `RuntimeCore.stats` for the reader's side.
            counters.compactedStacks.store(counters.compactedStacks.load(ordering: .relaxed) &+ k, ordering: .releasing)
            for j in 0..<k { settleParked(claimed[j], from: .compacting) }
        }
        for i in 0..<n { candidates[i].fiber.release() }
        l.pointee.compaction.count = 0
    }

    /// Copies a compacted stack back before the thread runs (from
    /// `contextToRun`: the thread is ours, `running`, and the bytes were
    /// published to us through its wake and queueing).
    @inline(never)
    func restoreStack(_ fiber: Fiber) {
        let saved = fiber.compactedStack.unsafelyUnwrapped
        fiber.compactedStack = nil
        fiber.stackWasCompacted = true
        let stack = fiber.stack
        gt_stack_restore(saved, UnsafeMutableRawPointer(stack.base.unsafelyUnwrapped) + stack.size)
        counters.restoredStacks.store(counters.restoredStacks.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }
}

extension Fiber {
    /// Copies [saved sp, stack top) to the heap (the caller owns the parked
    /// stack). False if there is nothing to save here: a sleep inside a
    /// coroutine body parks with its sp on the coroutine's stack, not this
    /// one (so this one is left alone), or memory ran out.
    func saveStack() -> Bool {
        guard let base = stack.base, let sp = context.pointee.sp else { return false }
        let top = UnsafeMutableRawPointer(base) + stack.size
        guard sp >= UnsafeMutableRawPointer(base), sp < top else { return false }
        guard let saved = gt_stack_save(sp, top - sp) else { return false }
        compactedStack = saved
        return true
    }

    /// Bytes the saved copy holds (tests and statistics), 0 if not compacted.
    var compactedBytes: Int {
        compactedStack.map { gt_stack_saved_length($0) } ?? 0
    }

    /// Frees the saved copy of a thread that will never run again
    /// (shutdown abandoned it).
    func discardCompactedStack() {
        if let saved = compactedStack {
            compactedStack = nil
            gt_stack_saved_free(saved)
        }
    }
}
