import CContext
import Synchronization

/// Recycles green stacks so that spawning never maps memory in the steady
/// state (a fresh mapping costs microseconds; a pooled one, nanoseconds).
///
/// Each worker keeps a LIFO of stacks (the most recently used are the
/// warmest in cache). A worker whose pool grows past `spillAt` moves half
/// to the shared pool, and one that runs dry refills from it, so stacks
/// follow the work when green threads start on one worker and end on
/// another. An idle worker returns the memory of stacks that went unused
/// for a whole `decayNanos` to the kernel (`madvise`), keeping the mappings
/// and the `warmCount` most recent.
///
/// Why the decay: trimming everything beyond the warm set whenever a worker
/// falls idle makes each burst of work fault its stacks back in. A fork-join
/// fib(27) holds ~6,000 stacks at its peak; trimmed at every idle moment,
/// each run takes ~5,800 page faults and a hundred `process_madvise` calls,
/// each flushing the other worker's TLB, ~5 % of a run. Go returns stack memory through its
/// background scavenger, jemalloc after its decay time, for the same reason.
///
/// **The decay period.** The pool tracks the low-water mark of its count
/// since the period began: the entries below it, the oldest, were not taken
/// all period. A worker about to sleep after the period ended trims those
/// and starts a new period; while any stack beyond the warm set still holds
/// pages it sleeps no longer than the period's end, so a burst's stacks go
/// back one to two seconds after the last burst. Under a virtual clock
/// sleeps take no real time, so everything beyond the warm set is trimmed
/// at once. `cleanBelow` keeps trimming from discarding a stack twice, and
/// trimming goes `trimSlice` stacks at a time, `parkIdle` checking for
/// work, due timers and shutdown between slices. A sleep cut short to trim
/// does not count as a deadlock confirmation (RuntimeCore.swift), so a
/// deadlock right after a burst is reported up to a period later. A pool
/// that spills hands its oldest half on as they are, pages and all, and the
/// shared pool decays by the same rule (without a warm set), trimmed by
/// whichever of its node's workers falls idle. Spilling them clean instead
/// made every repeat of a burst larger than `spillAt` (a million parked
/// threads) fault each stack's top page back in: half the time of a warm
/// `parkmany` went to those faults and the discards, where Go's warm repeat
/// reuses resident stacks. The exception is a stack whose thread was
/// compacted (StackCompaction.swift): it comes back clean (`putClean`), in
/// batches, since a burst of long sleepers would only compact it again, and
/// a million of them woken at once must not leave a million dirty stacks.
///
/// **Home nodes.** On a machine with several NUMA nodes a stack should be
/// memory of the node whose CPUs run its thread: a green thread's frames
/// are the hottest memory it has, and a remote access costs about what
/// the SLIT distance says (20: twice a local one). Three rules keep it so.
///
/// 1. *A stack is bound to a node for life.* A worker maps its stacks from
///    a slab of its own node whose memory policy is set (`mbind`,
///    `MPOL_PREFERRED`) before any page exists (stack.c), and the stack
///    records that node as its `home`. Every page of it faults in on that
///    node, whichever worker touches it and however often it was
///    discarded in between.
/// 2. *A stack returns to its home node's pool.* A worker's own LIFO holds
///    only stacks of its node. A thread that first ran on node A and
///    finished on node B gives its stack to A's shared pool (clean, like
///    every stack there: see below), not to B's worker.
/// 3. *A worker takes stacks of its node only*: its LIFO, then its node's
///    shared pool, then a fresh mapping. So the thread gets the stack of
///    the node of the worker that first runs it; a thread stolen before
///    its first run takes the thief's memory, which is where it runs.
///
/// Rejected designs:
///
/// * First touch alone, the kernel's default (Go's stacks live by it).
///   The top page is touched where the thread first runs, but deeper
///   pages are touched wherever the thread happens to run when its frames
///   grow, and a pooled stack keeps the pages of its last user, so one
///   stack ends up spread over nodes and no pool can say where it is.
///   Automatic NUMA balancing would move such pages after the fact; an
///   explicit policy has it leave them alone.
/// * `MPOL_BIND` instead of `MPOL_PREFERRED`. With the node's memory
///   exhausted, a bound stack's next page fault has nowhere to go, and the
///   green thread dies (SIGBUS or the OOM killer) in the middle of a call
///   while the machine has memory to spare. Preferred falls back to the
///   nearest node: a slower stack, never a crash.
/// * Pools per worker only, a stack going to whoever freed it. That is the
///   one-node design; across nodes a thread migrating A to B would carry
///   A's memory to B's next threads, and with the work-stealing that moves
///   threads the pools would mix within seconds.
/// * Taking another node's pooled stacks before mapping a fresh one. It
///   saves a mapping and gives the thread remote memory for its whole
///   life; a node's pools instead grow to its own peak concurrency.
///
/// Binding needs a real topology (`.auto`) of more than one node, a kernel
/// that lets the process allocate from more than one, and a worker pinned
/// to a CPU (its node is then the node of that CPU). Otherwise
/// `memoryNode` is -1 and stacks are mapped exactly as on one node: one
/// load and compare on each thread's exit is all the rest costs. A
/// simulated topology still keeps a pool per node, which tests use to
/// check the routing, but binds nothing, since its nodes have no memory.
/// A spare worker (SpareWorker.swift) is not pinned, so the few stacks it
/// maps are placed by first touch. A stack sent home keeps its pages: they
/// are on the home node already (rule 1), and the shared pool's decay
/// returns them if nobody takes the stack.
///
/// **Where stacks come from** (stack.c's header): slabs of 64 stacks, one
/// `MAP_NORESERVE` mapping each, every stack with a guard region
/// (`MADV_GUARD_INSTALL`, Linux 6.13+) that lives in the page tables and
/// does not split the mapping; elsewhere one mapping per stack with a
/// `PROT_NONE` page. Pages are committed on first touch, so a thread costs
/// the pages it uses, not `stackSize`. Stacks never grow or move: an
/// overflow hits the guard and is a SIGSEGV, delivered on the worker's
/// alternate signal stack. Mappings are released only at shutdown, so
/// `stats.stacksMapped` is the peak concurrency.
///
/// **The mapping limit.** With guard regions a million stacks are about
/// 16k mappings, far below the default `vm.max_map_count` (65,530). Without
/// them each stack is two VMAs (the guard's permissions differ, so
/// neighbours cannot merge): about 32k live threads fit under the default.
/// `scripts/setup.sh` raises the limit where it can, or prints the
/// `sysctl` line. Running out fails the thread that needed the stack: it
/// ends unrun, and its `join` throws `RuntimeError.outOfStackMemory`, whose
/// text names the limit or the memory and the fix (StackMapFailure.swift,
/// SpawnLimits.swift).
///
/// **Memory per green thread.** A live thread touches at least its top page
/// (the context and the first frames): 4 KiB of RSS, unless it sleeps
/// compacted. Beside it come the fiber object and the body's closure (a few
/// hundred bytes), a 32-byte timer entry while it sleeps, and outside RSS a
/// share of a VMA and of a page-table page. Go's sleeping goroutine costs
/// about 2.5-3 KB because Go can move stacks; these cannot move, so below
/// one page only a compacted sleeper goes.
struct StackPool: ~Copyable {
    static let warmCount = 64
    /// High enough that a worker's own burst (fib's ~6,000) stays local:
    /// a spill costs a lock per stack, and a refill from the shared pool
    /// one per batch.
    static let spillAt = 8_192
    static let refillBatch = 128
    /// How long a pooled stack must go untaken before an idle worker gives
    /// its memory back.
    static let decayNanos: Int64 = 1_000_000_000

    private var items = LocalLIFO<gt_stack>(capacity: 256)
    var count: Int { items.count }
    /// Stacks of compacted sleepers that finished, waiting to be discarded
    /// together (`putClean`); not in `items`, so nobody takes them yet.
    private var pendingClean = LocalLIFO<gt_stack>(capacity: StackCompactor.batchSize)
    /// The kernel memory node this worker's new stacks are bound to; -1
    /// where the runtime does not bind (one node, simulated, unpinned).
    private(set) var memoryNode: Int32 = -1

    /// Binds this pool's future stacks to `node` and, while empty,
    /// allocates its buffer again from the calling thread, the worker's,
    /// once pinned.
    mutating func settle(onMemoryNode node: Int32) {
        memoryNode = node
        if count == 0 { items = LocalLIFO(capacity: 256) }
    }
    private var marks = DecayMarks()

    @inline(__always)
    mutating func take() -> gt_stack? {
        guard let s = items.take() else { return nil }
        marks.tookDown(to: items.count)
        return s
    }

    @inline(__always)
    mutating func put(_ stack: gt_stack) {
        items.put(stack)
    }

    /// Pools a stack whose thread was compacted while it slept: clean, in
    /// batches of `StackCompactor.batchSize` (one `process_madvise`), or at
    /// the next `trim`. The runtime gave that memory back once already (a
    /// long sleep among many), and the page the thread faulted in to finish
    /// is not worth keeping for the next burst, whose sleepers would be
    /// compacted again; a stack that never slept compacted stays dirty, so
    /// a repeat of a burst of parked threads reuses resident stacks.
    mutating func putClean(_ stack: gt_stack) {
        pendingClean.put(stack)
        if pendingClean.count >= StackCompactor.batchSize { flushPendingClean() }
    }

    private mutating func flushPendingClean() {
        let n = pendingClean.count
        if n == 0 { return }
        _ = pendingClean.withItems { gt_stacks_discard($0, Int32(n)) }
        // On top, counted dirty: a later trim may discard them once more,
        // which costs a syscall and loses nothing.
        while let s = pendingClean.take() { items.put(s) }
    }

    /// Hands the oldest half to `shared`.
    mutating func spillHalf(into shared: SharedStackPool) {
        let half = count / 2
        items.removeOldest(half) { shared.put($0) }
        marks.removedOldest(half)
    }

    /// Stacks `trim` discards per call. Each is a syscall (3–10 µs here,
    /// with its TLB shoot-down), and a pool left by a million sleepers
    /// holds hundreds of thousands, so trimming goes in slices between
    /// which the worker checks for work, due timers and shutdown. Small
    /// slices, because a worker trims whenever it falls idle, also between
    /// the timers of a busy second: trimming 1,000 stacks in one go made
    /// 1–50 ms sleeps wake milliseconds late.
    static let trimSlice = 32

    /// Returns the pages of up to `trimSlice` stacks to the kernel: those
    /// beyond the warm set that went untaken for the whole period that ended
    /// by `now` (all of them when `decay` is 0). Returns true once nothing
    /// is left to trim now; the next period then begins.
    mutating func trim(now: Int64, decay: Int64) -> Bool {
        flushPendingClean()
        guard let (slice, last) = marks.nextSlice(count: count, warm: Self.warmCount, now: now, decay: decay) else {
            return true
        }
        // One process_madvise for the slice where the kernel allows it.
        _ = items.withItems { gt_stacks_discard($0 + slice.lowerBound, Int32(slice.count)) }
        return last
    }

    /// When trimming could next give memory back: the end of the current
    /// period, if any stack beyond the warm set still holds pages; nil if
    /// none does. An idle worker sleeps no longer than this.
    func trimDue(decay: Int64) -> Int64? {
        marks.due(count: count, warm: Self.warmCount, decay: decay)
    }

    mutating func removeAll(_ body: (inout gt_stack) -> Void) {
        items.forEach { body(&$0.pointee) }
        items.removeAll()
        pendingClean.forEach { body(&$0.pointee) }
        pendingClean.removeAll()
        marks = DecayMarks()
    }
}

/// The decay bookkeeping of a pool whose oldest stacks sit at the bottom
/// (index 0) and whose takes and puts happen at the top: which prefix is
/// already clean, and which prefix went untaken for the whole current
/// period. Both pools keep one; the shared pool's under its lock.
struct DecayMarks {
    /// Entries below this index were discarded since they were pooled.
    private var cleanBelow = 0
    /// The fewest stacks pooled since `epochStart`: the entries below it
    /// (the oldest) were not taken all that time.
    private var lowWater = 0
    private var epochStart: Int64 = 0

    /// After a take left `count` entries: none above it remain to be marked.
    @inline(__always)
    mutating func tookDown(to count: Int) {
        if cleanBelow > count { cleanBelow = count }
        if lowWater > count { lowWater = count }
    }

    /// After the oldest `n` entries left the pool (a spill).
    mutating func removedOldest(_ n: Int) {
        cleanBelow = max(0, cleanBelow - n)
        lowWater = max(0, lowWater - n)
    }

    /// The next at most `StackPool.trimSlice` entries to discard, marked
    /// clean already: beyond the `warm` newest, untaken for the whole period
    /// that ended by `now` (all of them when `decay` is 0). `last`: nothing
    /// is left to trim after it, and the next period has begun. nil when
    /// nothing is to be trimmed now.
    mutating func nextSlice(count: Int, warm: Int, now: Int64, decay: Int64) -> (Range<Int>, last: Bool)? {
        if now &- epochStart < decay { return nil }
        let keep = min(count - warm, decay == 0 ? count : lowWater)
        if keep <= cleanBelow {
            startPeriod(now, count: count)
            return nil
        }
        let slice = cleanBelow..<min(keep, cleanBelow + StackPool.trimSlice)
        cleanBelow = slice.upperBound
        if slice.upperBound < keep { return (slice, false) }
        startPeriod(now, count: count)
        return (slice, true)
    }

    private mutating func startPeriod(_ now: Int64, count: Int) {
        epochStart = now
        lowWater = count
    }

    /// The end of the current period, if an entry beyond the `warm` newest
    /// still holds pages; nil if none does.
    func due(count: Int, warm: Int, decay: Int64) -> Int64? {
        count - warm > cleanBelow ? epochStart &+ decay : nil
    }
}

/// The pool shared by the workers of one node: their spills, and the
/// stacks of that node freed on other nodes. Trimmed by decay like a
/// worker's own pool (any idle worker of the node does it, a slice at a
/// time under the lock), but with no warm set: the workers' pools keep
/// theirs.
final class SharedStackPool: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `items` and `marks` are guarded by
    // `lock`.

    private let lock = SpinLock()
    private var items: [gt_stack] = []
    private var marks = DecayMarks()

    func put(_ stacks: UnsafeBufferPointer<gt_stack>) {
        lock.withLock { items.append(contentsOf: stacks) }
    }

    func put(_ stack: gt_stack) {
        lock.withLock { items.append(stack) }
    }

    func take(upTo n: Int, into pool: inout StackPool) -> Bool {
        lock.lock()
        let k = min(n, items.count)
        for _ in 0..<k { pool.put(items.removeLast()) }
        marks.tookDown(to: items.count)
        lock.unlock()
        return k > 0
    }

    func take() -> gt_stack? {
        lock.withLock {
            let s = items.popLast()
            marks.tookDown(to: items.count)
            return s
        }
    }

    /// `StackPool.trim` for the shared pool: discards up to
    /// `StackPool.trimSlice` stacks that went untaken for the whole period
    /// that ended by `now` (all of them when `decay` is 0). The discard runs
    /// under the lock, so no worker can take a stack whose pages are being
    /// dropped; a slice is one `process_madvise`, and only idle workers
    /// trim. Returns true once nothing is left to trim now.
    func trim(now: Int64, decay: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let (slice, last) = marks.nextSlice(count: items.count, warm: 0, now: now, decay: decay) else {
            return true
        }
        _ = items.withUnsafeMutableBufferPointer { gt_stacks_discard($0.baseAddress! + slice.lowerBound, Int32(slice.count)) }
        return last
    }

    /// When trimming could next give memory back (see `StackPool.trimDue`).
    func trimDue(decay: Int64) -> Int64? {
        lock.withLock { marks.due(count: items.count, warm: 0, decay: decay) }
    }

    /// Whether the stack at `base` is pooled here (diagnostics and tests).
    func contains(base: UnsafeMutableRawPointer) -> Bool {
        lock.withLock { items.contains { $0.base == base } }
    }

    func removeAll() -> [gt_stack] {
        lock.withLock {
            let all = items
            items.removeAll()
            marks = DecayMarks()
            return all
        }
    }
}
