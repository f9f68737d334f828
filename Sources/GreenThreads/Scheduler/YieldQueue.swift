import CContext
import Synchronization

/// A worker's yielded green threads, oldest first: a small ring that only the
/// owning worker touches, with plain loads and stores (Tokio's "defer" list,
/// Go's Gosched sending a goroutine behind everything else).
///
/// ## Why not the deque
/// Putting the yielder on the work-stealing deque and taking the oldest item
/// back costs a CAS on `top`: a locked instruction per yield, about a third
/// of a yield's time. Thieves can take from the deque at any
/// moment, so the owner's take has to race them; a ring nobody else reads
/// needs no atomics at all.
///
/// ## Invariants
/// * Owner only: pushed by `Worker.switchAway` (a yield, before its switch:
///   nobody else can take it from here meanwhile) or `finishSwitch`, taken by
///   `Worker.nextLocal` after the run-next slot and the deque, and at every
///   other fairness tick (so yielders cannot starve behind a deque that
///   keeps refilling).
/// * Invisible to thieves, so it is moved to the deque (`Worker.exposeYields`)
///   whenever a green thread is entered while yielders wait here and some
///   worker is idle (spinning or asleep): idle workers then steal them.
/// * A worker stuck in one green thread never switches, so never exposes
///   its ring: sysmon takes it over (`Worker.rescueYields`) and puts it on
///   the injector, where idle workers and a replacement worker find it.
/// * A worker that looks for work takes from here before it spins or
///   sleeps, so an idle worker's ring is empty: deadlock detection, which
///   needs every worker asleep, never misses a yielder.
/// * Full: the ring moves to the deque, oldest first, and takes the new
///   yielder (FIFO order holds, since a yield takes the deque's oldest first).
///
/// Items are `Unmanaged<Fiber>` bit patterns, owning no retain (as in the deque).
struct YieldQueue: ~Copyable {
    static let capacity = 256
    private static let mask = capacity - 1

    private let slots: UnsafeMutablePointer<UInt>
    /// `capacity`, or 0 for a ring that holds nothing (yields then go to
    /// the deque): a field, so that a disabled ring costs the hot path no
    /// extra test.
    private let limit: Int
    /// The oldest item; advanced by `take`.
    private var head = 0
    /// The next free slot; advanced by `push`. `tail - head` is the count.
    private var tail = 0

    init(enabled: Bool = true) {
        slots = .allocate(capacity: Self.capacity)
        limit = enabled ? Self.capacity : 0
    }

    deinit {
        slots.deallocate()
    }

    var count: Int { tail &- head }

    var isEmpty: Bool { head == tail }

    /// Appends `item`; false when full (the caller moves the ring to the deque).
    @inline(__always)
    mutating func push(_ item: UInt) -> Bool {
        if tail &- head == limit { return false }
        slots[tail & Self.mask] = item
        tail &+= 1
        return true
    }

    /// The oldest item, if any.
    @inline(__always)
    mutating func take() -> UInt? {
        if head == tail { return nil }
        let item = slots[head & Self.mask]
        head &+= 1
        return item
    }

    /// The items, oldest first, left in place (sysmon's rescue reads them
    /// while the owner is held off; the owner then calls `removeAll`).
    func forEach(_ body: (UInt) -> Void) {
        var i = head
        while i != tail {
            body(slots[i & Self.mask])
            i &+= 1
        }
    }

    mutating func removeAll() {
        head = tail
    }
}

/// Sysmon's claim on a worker's yield queue, in `Worker.yieldClaim`.
/// 0 → 1 and 1 → 0 or 2 by sysmon; 2 → 0 by the owner.
enum YieldClaim {
    static let none: UInt8 = 0
    /// Sysmon is deciding whether it may take the ring; the owner waits.
    static let deciding: UInt8 = 1
    /// Sysmon moved the ring's items to the injector; the owner empties it.
    static let taken: UInt8 = 2
}

extension Worker {
    /// Queues a green thread that just yielded (`finishSwitch`, owner only).
    @inline(__always)
    func queueYielder(_ fiber: Unmanaged<Fiber>) {
        let bits = UInt(bitPattern: fiber.toOpaque())
        if !local.pointee.yields.push(bits) { overflowYields(bits) }
    }

    /// The ring is full: everything in it goes to the deque, oldest first,
    /// and `bits`, the newest yielder, starts the ring again (or follows
    /// them, if the ring is disabled).
    @inline(never)
    private func overflowYields(_ bits: UInt) {
        moveYieldsToDeque()
        if !local.pointee.yields.push(bits) { pushLocal(Self.fiber(bits)) }
    }

    /// The end of every switch into a green thread, on the worker it landed
    /// on (the scheduling loop skips it: the count stays odd). When a green
    /// thread is about to run in front of queued yielders while some
    /// worker is idle, exposes them to thieves: the idle worker cannot see
    /// the ring, and left there they would wait for this worker's next
    /// switch however long the entered thread runs. Two relaxed loads of
    /// `Idle` counters that change only when a worker starts or stops
    /// looking for work, so a busy runtime pays no shared-line traffic
    /// here. Then marks the switch done (`leaveSwitch`).
    @inline(__always)
    func afterSwitch() {
        if !local.pointee.yields.isEmpty, idle.anyIdle { exposeYields() }
        leaveSwitch()
    }

    /// Moves the yield queue to the deque and tells the idle workers.
    @inline(never)
    private func exposeYields() {
        moveYieldsToDeque()
        // The deque push published them (release); notifyWork's fence
        // orders that before its reads of the idle counts (Idle.swift).
        idle.notifyWork()
    }

    /// Empties the ring into the deque, oldest first (a full deque spills
    /// to the injector as usual). Returns how many moved.
    @discardableResult
    func moveYieldsToDeque() -> Int {
        var n = 0
        while let bits = local.pointee.yields.take() {
            pushLocal(Self.fiber(bits))
            n += 1
        }
        return n
    }

    // MARK: Hand-over to sysmon
    //
    // A Dekker handshake with the fence on one side only. At the start of
    // every switch the owner makes `switchCount` odd, then (compiler barrier
    // only) loads `yieldClaim`; sysmon stores `yieldClaim = deciding`, runs
    // membarrier (a full fence on every running thread of the process, the
    // owner's included), then loads `switchCount`. The owner's store and
    // load are on either side of the fence membarrier ran on its CPU (or
    // its store before it and its load after), so either sysmon sees the
    // odd count (and withdraws) or the owner sees the claim (and waits for
    // sysmon's decision); both may happen, never neither. So when sysmon
    // sees an even count, the owner is in a green thread's code and will
    // not touch its ring before it has seen the claim settled.

    /// The start of every switch (`switchAway`), before the ring is touched.
    @inline(__always)
    func enterSwitch() {
        Self.bump(switchCount)  // odd: switching
        gt_compiler_barrier()
        // Acquire (a plain load on x86): a `none` that sysmon stored after
        // reading the ring (peekYields, rescueYields, release) orders its
        // reads before our next writes to the ring.
        if yieldClaim.load(ordering: .acquiring) != YieldClaim.none { settleYieldClaim() }
    }

    /// The end of a switch into a green thread's code (or of a yield that
    /// kept the CPU). Release: sysmon's acquire load of the even count sees
    /// the ring as we leave it.
    @inline(__always)
    func leaveSwitch() {
        switchCount.store(switchCount.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    /// Waits out sysmon's decision; empties the ring if sysmon took it.
    @inline(never)
    private func settleYieldClaim() {
        var claim = yieldClaim.load(ordering: .acquiring)
        while claim == YieldClaim.deciding {
            gt_cpu_relax()
            claim = yieldClaim.load(ordering: .acquiring)
        }
        // Acquire (above): pairs with sysmon's release of `taken`, after its
        // last read of the ring.
        if claim == YieldClaim.taken {
            local.pointee.yields.removeAll()
            yieldClaim.store(YieldClaim.none, ordering: .relaxed)
        }
    }

    /// Sysmon: how many yielders wait behind the green thread running here
    /// (0 if the owner is switching). Looks under the claim, so it costs a
    /// membarrier: sysmon asks once per stall.
    func peekYields() -> Int {
        guard claimYields() else { return 0 }
        let n = local.pointee.yields.count
        yieldClaim.store(YieldClaim.none, ordering: .releasing)
        return n
    }

    /// Sysmon, for a worker stuck in one green thread with yielders queued:
    /// moves them to the worker's node's injector, where any worker finds
    /// them. Returns how many moved (0 if the owner was switching after
    /// all, or its ring is empty).
    func rescueYields() -> Int {
        guard claimYields() else { return 0 }
        var batch = FiberBatch()
        local.pointee.yields.forEach { batch.append($0) }
        if batch.count == 0 {
            yieldClaim.store(YieldClaim.none, ordering: .releasing)
            return 0
        }
        homeInjector.push(batch)
        // Release: our reads of the ring happen before the owner empties it.
        yieldClaim.store(YieldClaim.taken, ordering: .releasing)
        return batch.count
    }

    /// Sysmon: claims the ring; true if the owner is in a green thread's
    /// code, so the ring is sysmon's to read until it settles the claim
    /// (`none`, or `taken`); false (and no claim) if the owner is switching
    /// or has not settled an earlier claim.
    private func claimYields() -> Bool {
        guard yieldClaim.compareExchange(
            expected: YieldClaim.none, desired: YieldClaim.deciding, ordering: .relaxed
        ).exchanged else { return false }
        // The fence on the owner's behalf (see above). Registration
        // succeeded when the runtime chose yield queues, so this cannot
        // fail; if it ever did, withdrawing is the safe answer. Acquire:
        // pairs with the owner's release of the even count.
        guard gt_membarrier() == 0, switchCount.load(ordering: .acquiring) & 1 == 0 else {
            yieldClaim.store(YieldClaim.none, ordering: .releasing)
            return false
        }
        return true
    }
}
