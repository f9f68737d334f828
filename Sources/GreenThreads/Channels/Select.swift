// Select.swift: waiting on several channel operations at once (Go's select).
//
// ## The rule
//
// A select behaves as if it looked at all its channels at one instant: it
// takes `default`, or parks, only if no case was ready at that instant, and
// among the cases ready then it picks uniformly (Go's rule, checked by
// TestNonblockSelectRace in Go's runtime/chan_test.go).
//
// ## Design: every lock, in address order (Go's selectgo)
//
// One round of a select:
//
//  1. Fast path: read every case's readiness word (Channel.swift,
//     "Readiness without the lock"; no lock), draw one case uniformly among
//     those whose bit is set and poll it under its own channel's lock. If
//     it completes, that is the answer. If no bit was set, a select with a
//     default may take it without a lock ("Default without locks" below).
//  2. Lock every channel of the select, each once, in address order (Go's
//     lockorder).
//  3. Under the locks, read every case's readiness word again and poll the
//     cases whose bit is set, in an order drawn uniformly among them (a
//     select of more than 64 cases, one per bit of a mask: every case, in
//     a uniform permutation, Go's pollorder). The first that can complete
//     does, under the locks; every lock is released, then the counterpart
//     it claimed (if any) is resumed.
//  4. None could: with a default case, unlock and run it. Otherwise, still
//     holding every lock, queue one waiter per case, all for the same wait
//     (one `Waker`, so at most one case can be claimed), release the locks
//     inside Park.wait's register step, and park.
//  5. After waking, unlink the waiters of the cases that did not fire
//     (each under its own lock), then run the fired case's body, or the
//     timeout body, or throw on cancellation.
//
// Why this is linearizable:
//  * A case completed in step 1 or 3 happened at the instant its channel's
//    operation ran under that channel's lock: it was ready then, and every
//    other thread sees the operation ordered by that lock, as a plain send
//    or receive.
//  * "Nothing ready" is decided in step 3 while every lock is held. Each
//    case's readiness depends only on its own channel's state (buffer,
//    closed flag, parked counterparts), which no one can change without
//    that lock, so all the polls read one snapshot: the instant is any
//    moment while the locks are all held. Skipping the cases whose bit is
//    clear skips no ready case: a direction's bit is set, under its lock,
//    whenever that direction is ready (a bit may stay set over a dead
//    waiter, and that case's poll then finds it not ready). (A counterpart's readiness
//    also depends on its claim word, a CAS outside the lock; a waiter whose
//    claim another channel won meanwhile is dead, exactly as in Go, where
//    selectDone does the same.)
//  * A blocking select queues its waiters under the same locks, so no
//    counterpart can arrive between the poll that found nothing and the
//    queueing: any later operation on any of the channels finds a waiter.
//  * Fairness: with several cases ready at the instant, the first of a
//    uniform permutation is uniform among them; step 3's successive draws
//    among the remaining set bits are such a permutation of the set bits,
//    the ready cases among them. Step 1 draws uniformly
//    among the set bits, a superset of the ready cases (a bit may stay set
//    over a dead waiter, never clear over a ready case). With r cases ready
//    and s stale bits, a ready case is drawn with probability 1/(r+s), and
//    a stale draw fails its poll and goes on to step 3, which picks each
//    ready case with probability 1/r: 1/(r+s) + s/(r+s) * 1/r = 1/r.
//
// ## Default without locks
//
// A select with a default case over idle channels (a poll loop) would pay
// every lock of step 3 only to learn that nothing is ready. Each channel
// publishes a readiness word (Channel.swift, "Readiness without the
// lock"): a bit per direction, set whenever that direction is ready, and
// a count of the bits' changes. The fast path of step 1 has read the word
// of every case once; a select with default reads them a second time
// (a double collect). If the first pass found every case's bit clear and
// the second found every word unchanged, then at the moment between the
// passes every case was not ready: word i held the same value from its
// first load to its second (the count changes with every flip, so no
// ready spell can hide between them), and all first loads precede all
// second loads in the single order of sequentially consistent operations.
// The select takes default without a lock. Anything else (a bit set, a
// word changed) goes to step 3, which decides under the locks. A select
// with one case needs no second pass: its one load was the instant.
//
// Deadlock freedom: a select holds several channel locks only in address
// order and takes no other lock while holding them (Park.wait's register
// step only queues and unlocks); every other channel operation holds one
// channel lock at a time. Duplicate channels are locked once.
//
// A select that sends and receives on one unbuffered channel queues both
// waiters; it cannot rendezvous with itself, because it polls only before
// queueing and nobody else can claim both of its waiters (one claim ends
// the wait).
//
// ## Rejected alternatives
//
// Polling each channel under its own lock, one after another, and deciding
// "nothing ready" from those polls: between two polls another thread can
// fill a channel already polled and empty one not yet polled, so a select
// took `default` although a case was ready at every instant (1 round in
// 10^5 with two cases, 6-16% with 34).
//
// A version count bumped by every channel operation, read in a double
// collect in place of step 3's locks for every select: it costs an atomic
// increment in every send and receive, the fast paths most programs run
// far more often than a select's slow path, and it cannot replace the
// locks of a select that waits (its waiters must be queued under them).
// The readiness word changes only when a direction flips between ready
// and not ready, and it serves only the selects that take default.
//
// Why the fast path draws among set bits instead of polling a uniformly
// drawn case and then the others one by one, each under its lock: in a
// fan-in, whose consumer drains some channels before others, a blind draw
// often lands on an empty channel, and the one-by-one polls then pay a
// permutation and up to n lock round trips for a case whose bit already
// said it was ready. Reading n words is n plain loads on x86 and arm64.
//
// ## Specialization and allocation
//
// `select` is `@inline(__always)` and generic over the clause tree its
// builder makes (SelectClauses.swift, SelectGroups.swift), so step 1 runs
// in the caller's own code, for its element types and its fixed number of
// cases: the readiness loads, the draw and the poll of one case cost what
// a `tryReceive` does, with no call in between. Everything after a fast
// path that completed nothing (`_selectRest`, `_selectSlow`) is
// specialized in the caller too but kept out of line: the locked poll of
// step 3 and the bodies move values with the element's own code, and a
// list of cases is one value on the stack. Only the wait itself (`_selectPark`: queueing a
// waiter per case, parking, unlinking) runs unspecialized, over type-erased
// `SelectOperation`s (SelectOperation.swift) that reach each channel
// through the metatype of an element-typed class and move values only
// through typed pointers (see Channel.swift, "Specialization").
//
// What a select puts on its stack, on the slow path only: the operations,
// a copy of each send value (it must stay put while the select is parked:
// a receiver copies it from there), the lock order, the readiness words
// (or the poll order), one value slot shared by all receive cases (only
// the case that fires writes it) and one waiter per case (Waiting/Waiter.swift). Waiters need no cache
// (Go's per-P sudog cache): a green thread's stack never moves, so they
// live in the parked frame itself. A select allocates nothing, except the
// array of a `for` group. Building the cases retains each channel (a case
// may name a channel nothing else holds, as Go's `<-time.After(d)` does)
// and each capturing body, by hand, so that the clause tree is plain bits
// and its teardown is one release per retained reference, not a
// value-witness walk of a nested generic struct (SelectClauses.swift,
// "Clauses are plain bits"). That is also why the braces cannot throw:
// a builder interrupted half-way would leave its earlier cases retained.
//
import CContext

/// The error `select` throws when it has nothing to wait for.
public enum SelectError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The select had no case at all (Go's `select {}` blocks forever;
    /// here it is an error, since it can never complete).
    case noCases

    public var description: String {
        switch self {
        case .noCases: return "select with no cases can never complete"
        }
    }
}

/// Waits until one of several channel operations can proceed, performs it,
/// and returns the result of that case's body.
///
/// ```swift
/// let r = try select {
///     Case.receive(numbers) { n in "got \(n ?? -1)" }   // n == nil: numbers is closed
///     Case.send(requests, 5) { "sent" }
///     Case.timeout(.milliseconds(10)) { "timed out" }
///     // or: Case.default { "nothing ready" }
/// }
/// ```
///
/// Each case names its type (`Case.`, or `SelectCase.`): a line starting
/// with a bare `.receive` would continue the previous line's expression as a
/// method call, not start a new case.
///
/// Exactly one case runs. If several operations are ready, one is picked
/// uniformly at random (Go's rule); otherwise the select waits until one is,
/// or the timeout passes (the earliest, if several are given). With a
/// `default` case it never waits. A `receive` on a closed channel is ready
/// and passes nil; a `send` on a closed channel is ready and throws.
/// Conditional (`if`) and looped (`for`) cases are allowed.
///
/// The braces only list cases, and cannot throw: compute a channel or a
/// value that needs `try` before the select (`let ch = try open()`). The
/// case bodies may throw.
///
/// Callable from a green thread (parks) or an OS thread (blocks).
/// - Throws: `ChannelError.closed` if the chosen case sends on a closed
///   channel; `CancellationError` if the calling green thread (or a cancel
///   scope around the call) is cancelled while waiting; `DeadlineExceeded`
///   if a `withDeadline` scope's deadline passes first (a `timeout` case
///   that comes first runs instead); `SelectError.noCases` if there is no case; whatever the
///   chosen body throws.
/// - Precondition: at most one `default` case.
@inlinable @inline(__always)
public func select<Result, Clauses: SelectClause>(
    @SelectBuilder<Result> _ cases: () -> Clauses
) throws -> Result where Clauses.Result == Result {
    // Inlined into the caller, with the builder's closure: the clause tree
    // is a value of plain bits the caller's optimizer sees whole; what
    // building it retained is released here, on every way out
    // (SelectClauses.swift, "Clauses are plain bits").
    let clauses = cases()
    defer { clauses._release() }
    var shape = _SelectShape()
    clauses._measure(&shape)
    precondition(shape.defaults <= 1, "GreenThreads: a select may have at most one default case")
    let n = shape.operations
    if n > 0 && n <= UInt.bitWidth {
        // The fast path (step 1 of the file header).
        var result: Result?
        let done = try withUnsafeTemporaryAllocation(of: UInt.self, capacity: n) { buffer in
            try _selectFast(clauses, shape, words: buffer.baseAddress.unsafelyUnwrapped, &result)
        }
        if done { return result.unsafelyUnwrapped }
    }
    return try _selectRest(clauses, shape)
}

/// Step 1 of the file header, inlined into the caller: one pass over the
/// cases' readiness words, then a poll of one case drawn uniformly among
/// those that looked ready; or default, when none did (one case: its load
/// was the instant; more: a second pass finds every word unchanged).
/// Returns false when the select must go on (`_selectRest`).
@inlinable @inline(__always)
func _selectFast<Clauses: SelectClause>(
    _ clauses: Clauses, _ shape: _SelectShape, words: UnsafeMutablePointer<UInt>, _ result: inout Clauses.Result?
) throws -> Bool {
    var mask: UInt = 0, i = 0
    clauses._ready(words, &mask, &i)
    if mask != 0 {
        var k = mask & (mask &- 1) == 0 ? mask.trailingZeroBitCount : _selectPick(mask)
        return try clauses._pollOne(&k, &result)
    }
    guard shape.defaults == 1 else { return false }
    if shape.operations > 1 {
        i = 0
        guard clauses._quiet(words, &i, recheck: true) else { return false }
    }
    _ = try clauses._runDefault(&result)
    return true
}

/// What follows a fast path that completed nothing, specialized in the
/// caller but not inlined: no case at all, a default that must be decided
/// under the locks, or a select that would wait (steps 3-5).
@inlinable @inline(never)
func _selectRest<Clauses: SelectClause>(_ clauses: Clauses, _ shape: _SelectShape) throws -> Clauses.Result {
    if shape.operations == 0 && shape.timeouts == 0 && shape.defaults == 0 { throw SelectError.noCases }
    return try _selectSlow(clauses, shape)
}

/// Steps 2-5 of the file header for `select`, specialized like the fast
/// path except for the wait itself: the cases as type-erased operations on
/// the stack (for locking and parking), every lock taken, the one-instant
/// poll, then default, or the unspecialized park (`_selectPark`), then the
/// body of the case that happened.
@inlinable @inline(never)
func _selectSlow<Clauses: SelectClause>(
    _ clauses: Clauses, _ shape: _SelectShape
) throws -> Clauses.Result {
    let n = shape.operations
    let deadline = shape.earliestTimeout.map { _selectDeadline(after: $0) }
    return try withUnsafeTemporaryAllocation(of: SelectOperation.self, capacity: max(n, 1)) { opsBuffer in
        try withUnsafeTemporaryAllocation(byteCount: max(shape.sendBytes, 1), alignment: shape.sendAlignment) { values in
            var erasure = _SelectErasure(operations: opsBuffer.baseAddress.unsafelyUnwrapped, values: values.baseAddress.unsafelyUnwrapped)
            clauses._erase(&erasure)
            defer {
                // The send values' copies: a receiver copied what it took.
                var again = _SelectErasure(operations: erasure.operations, values: erasure.values)
                clauses._destroyErased(&again)
            }
            let ops = erasure.operations
            // The lock order, then either the readiness words (up to one
            // case per bit of a mask) or a poll order (more cases).
            return try withUnsafeTemporaryAllocation(of: Int.self, capacity: max(2 * n, 1)) { scratch in
                let lockOrder = scratch.baseAddress.unsafelyUnwrapped, order = lockOrder + n
                SelectOrder.sortByChannel(lockOrder, count: n, ops)
                let words = UnsafeMutableRawPointer(order).assumingMemoryBound(to: UInt.self)
                // One value slot for every receive case: only the case that
                // fires ever writes it (a poll that succeeds, or the one
                // counterpart that wins the wait's claim).
                return try withUnsafeTemporaryAllocation(byteCount: shape.slotSize, alignment: shape.slotAlignment) { slotBuffer in
                    let slot = slotBuffer.baseAddress.unsafelyUnwrapped
                    var result: Clauses.Result?
                    while true {
                        // 2-3. One instant: every lock, then the polls.
                        _selectLockAll(clauses, ops, lockOrder, count: n, unlock: false)
                        var fired = -1, polled = _SelectPolled(.wouldBlock)
                        if n <= UInt.bitWidth {
                            var mask: UInt = 0, i = 0
                            clauses._ready(words, &mask, &i)
                            while mask != 0 {
                                let k = mask & (mask &- 1) == 0 ? mask.trailingZeroBitCount : _selectPick(mask)
                                var j = k
                                polled = clauses._pollHeld(&j, slot: slot)
                                if polled.attempt != .wouldBlock {
                                    fired = k
                                    break
                                }
                                mask &= ~(1 &<< UInt(k))
                            }
                        } else {
                            SelectOrder.shuffle(order, count: n, first: _selectFirstCase(of: n))
                            for i in 0..<n {
                                var j = order[i]
                                polled = clauses._pollHeld(&j, slot: slot)
                                if polled.attempt != .wouldBlock {
                                    fired = order[i]
                                    break
                                }
                            }
                        }
                        if fired >= 0 {
                            _selectLockAll(clauses, ops, lockOrder, count: n, unlock: true)
                            polled.counterpart?.resume()
                            var k = fired
                            _ = try clauses._run(&k, closed: polled.attempt == .closed, slot: slot, &result)
                            return result.unsafelyUnwrapped
                        }
                        if shape.defaults > 0 {
                            _selectLockAll(clauses, ops, lockOrder, count: n, unlock: true)
                            _ = try clauses._runDefault(&result)
                            return result.unsafelyUnwrapped
                        }
                        // 4-5. Wait, still holding every lock until queued.
                        let chosen = try _selectPark(ops, count: n, slot: slot, lockOrder: lockOrder, deadline: deadline)
                        switch chosen {
                        case _selectRetry:
                            continue
                        case _selectTimedOut:
                            var k = shape.earliestTimeoutIndex
                            _ = try clauses._runTimeout(&k, &result)
                        default:
                            var k = chosen
                            _ = try clauses._run(&k, closed: ops[chosen].closed, slot: slot, &result)
                        }
                        return result.unsafelyUnwrapped
                    }
                }
            }
        }
    }
}

/// Takes (or releases) every distinct channel lock of the select in lock
/// order, each through its clause's own specialized code.
@inlinable
func _selectLockAll<Clauses: SelectClause>(
    _ clauses: Clauses, _ ops: UnsafeMutablePointer<SelectOperation>, _ lockOrder: UnsafeMutablePointer<Int>,
    count n: Int, unlock: Bool
) {
    var previous: UnsafeRawPointer?
    for i in 0..<n {
        let index = lockOrder[i], channel = ops[index].channel
        if channel != previous {
            var k = index
            clauses._lock(&k, unlock: unlock)
        }
        previous = channel
    }
}

/// The monotonic deadline of a select's timeout, fixed when the select
/// starts.
@usableFromInline
func _selectDeadline(after duration: Duration) -> Int64 { Park.deadline(after: duration) }

/// The first case a select polls: uniform over its `count` channel cases.
@usableFromInline
func _selectFirstCase(of count: Int) -> Int {
    if count == 1 { return 0 }
    if let raw = gt_current_worker() {
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.local.pointee.rng.next(below: count) }
    }
    var rng = FastRandom(seed: gt_random_seed())
    return rng.next(below: count)
}

/// A case drawn uniformly among the set bits of `mask` (at least two).
@usableFromInline
func _selectPick(_ mask: UInt) -> Int {
    var rest = mask
    var skip: Int
    if let raw = gt_current_worker() {
        skip = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef {
            $0.local.pointee.rng.next(below: mask.nonzeroBitCount)
        }
    } else {
        var rng = FastRandom(seed: gt_random_seed())
        skip = rng.next(below: mask.nonzeroBitCount)
    }
    while skip > 0 {
        rest &= rest &- 1
        skip -= 1
    }
    return rest.trailingZeroBitCount
}

/// `_selectPark`'s timeout passed.
@usableFromInline let _selectTimedOut = -2
/// `_selectPark` woke with no case fired: poll again.
@usableFromInline let _selectRetry = -3

/// Steps 4 and 5 of the file header. Called holding every lock of the
/// select (`lockOrder`) after a poll found no case ready; releases them.
/// Returns the index of the operation that happened (a receive's value is
/// in `slot`), `_selectTimedOut` or `_selectRetry`.
@usableFromInline
func _selectPark(
    _ ops: UnsafeMutablePointer<SelectOperation>, count n: Int, slot: UnsafeMutableRawPointer,
    lockOrder: UnsafeMutablePointer<Int>, deadline: Int64?
) throws -> Int {
    // One waiter per case, on this stack (see Waiter.swift): every one of
    // them is unlinked before this returns.
    try Waiter.withTemporary(count: max(n, 1)) { waiters in
        // Queue a waiter on every case while still holding every lock, so
        // no counterpart can come between the poll and the queueing, then
        // release them and park.
        var queued = false
        let cause = Park.waitQueued(reason: .select, deadline: deadline, cancellable: true) { waker in
            for i in 0..<n { ops[i].enqueueHeld(waiters + i, slot, waker) }
            queued = true
            SelectOrder.unlockAll(ops, lockOrder, count: n)
            return true
        }
        if !queued {
            // Interrupted before the wait began: nothing was queued.
            SelectOrder.unlockAll(ops, lockOrder, count: n)
            try cause.throwIfInterrupted()
            throw CancellationError()
        }
        // Withdraw the losing registrations, then report the winner: the
        // one waiter a counterpart (or close) claimed.
        var fired = -1
        for i in 0..<n {
            if waiters[i].outcome != .waiting {
                ops[i].collect(waiters + i)
                fired = i
            } else {
                ops[i].unregister(waiters + i)
            }
        }
        if fired >= 0 { return fired }
        switch cause {
        case .notified:
            // Unreachable by the protocol (a notification is a claim of one
            // of our waiters); polling again is the safe answer.
            return _selectRetry
        case .timedOut: return _selectTimedOut
        case .cancelled, .deadlock: throw CancellationError()
        case .deadlineExceeded: throw DeadlineExceeded()
        }
    }
}

/// The orders a select visits its cases in: a uniform poll order, and the
/// global lock order (channel address) that keeps two selects from
/// deadlocking on each other's locks.
@usableFromInline
enum SelectOrder {
    /// Writes into `order` a uniform permutation of 0..<n that starts
    /// with `first` (drawn uniformly by the caller), the rest shuffled
    /// inside-out (Fisher-Yates) from the worker's generator, or on a plain
    /// OS thread from a generator seeded for this call. (Unretained: a
    /// strong reference to the worker would cost an atomic retain/release
    /// pair per select.)
    @usableFromInline
    static func shuffle(_ order: UnsafeMutablePointer<Int>, count n: Int, first: Int) {
        guard n > 0 else { return }
        order[0] = first
        let rest = order + 1
        func fill(_ next: (Int) -> Int) {
            for i in 0..<(n - 1) {
                let j = next(i + 1)
                if j != i { rest[i] = rest[j] }
                rest[j] = i < first ? i : i + 1
            }
        }
        if let raw = gt_current_worker() {
            Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
                fill { worker.local.pointee.rng.next(below: $0) }
            }
        } else {
            var rng = FastRandom(seed: gt_random_seed())
            fill { rng.next(below: $0) }
        }
    }

    /// Writes 0..<n into `locks`, sorted by channel address: insertion sort
    /// for the usual handful of cases, heapsort (no allocation, n log n)
    /// beyond that.
    @usableFromInline
    static func sortByChannel(_ locks: UnsafeMutablePointer<Int>, count n: Int, _ ops: UnsafeMutablePointer<SelectOperation>) {
        for i in 0..<n { locks[i] = i }
        @inline(__always) func key(_ k: Int) -> UInt { UInt(bitPattern: ops[locks[k]].channel) }
        if n <= 16 {
            for i in 1..<max(n, 1) {
                let moving = locks[i], address = UInt(bitPattern: ops[moving].channel)
                var j = i
                while j > 0 && key(j - 1) > address {
                    locks[j] = locks[j - 1]
                    j -= 1
                }
                locks[j] = moving
            }
            return
        }
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while 2 * root + 1 < end {
                var child = 2 * root + 1
                if child + 1 < end && key(child) < key(child + 1) { child += 1 }
                if key(root) >= key(child) { return }
                locks.swapAt(root, child)
                root = child
            }
        }
        for start in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(start, n) }
        for end in stride(from: n - 1, to: 0, by: -1) {
            locks.swapAt(0, end)
            siftDown(0, end)
        }
    }

    /// Unlocks every distinct channel (what `_selectLockAll` locked), for
    /// the type-erased wait. Duplicates are adjacent in `locks` order.
    static func unlockAll(_ ops: UnsafeMutablePointer<SelectOperation>, _ locks: UnsafeMutablePointer<Int>, count n: Int) {
        var previous: UnsafeRawPointer?
        for k in 0..<n {
            let op = ops[locks[k]]
            if op.channel != previous { op.kind.unlock(op.channel) }
            previous = op.channel
        }
    }
}

extension UnsafeMutablePointer where Pointee == Int {
    @inline(__always)
    fileprivate func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}
