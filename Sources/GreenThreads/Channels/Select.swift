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
//  1. Draw a uniform poll order (Go's pollorder).
//  2. Fast path: poll the first case of that order under its own channel's
//     lock. If it completes, that is the answer.
//  3. Lock every channel of the select, each once, in address order (Go's
//     lockorder), and poll the cases in the poll order. The first that can
//     complete does, under the locks; every lock is released, then the
//     counterpart it claimed (if any) is resumed.
//  4. None could: with a default case, unlock and run it. Otherwise, still
//     holding every lock, queue one waiter per case, all for the same wait
//     (one `Waker`, so at most one case can be claimed), release the locks
//     inside Park.wait's register step, and park.
//  5. After waking, unlink the waiters of the cases that did not fire
//     (each under its own lock), then run the fired case's body, or the
//     timeout body, or throw on cancellation.
//
// Why this is linearizable:
//  * A case completed in step 2 or 3 happened at the instant its channel's
//    operation ran under that channel's lock: it was ready then, and every
//    other thread sees the operation ordered by that lock, as a plain send
//    or receive.
//  * "Nothing ready" is decided in step 3 while every lock is held. Each
//    case's readiness depends only on its own channel's state (buffer,
//    closed flag, parked counterparts), which no one can change without
//    that lock, so all the polls read one snapshot: the instant is any
//    moment while the locks are all held. (A counterpart's readiness
//    also depends on its claim word, a CAS outside the lock; a waiter whose
//    claim another channel won meanwhile is dead, exactly as in Go, where
//    selectDone does the same.)
//  * A blocking select queues its waiters under the same locks, so no
//    counterpart can arrive between the poll that found nothing and the
//    queueing: any later operation on any of the channels finds a waiter.
//  * Fairness: with several cases ready at the instant, the first of a
//    uniform permutation is uniform among them. Step 2 takes the first case
//    of that same permutation, so it does not bias the choice either.
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
// 10^5 with two cases, 6-16% with 34). Versions of each channel (a
// double-collect snapshot) would avoid the locks, but cost an atomic
// increment in every channel operation, the fast paths that most programs
// run far more often than a select's slow path.
//
// ## Specialization and allocation
//
// `select`, the case constructors and the builder are `@inlinable`, so
// building the cases is specialized in the caller. A case is a flat value
// (`SelectCase`): no object per case, and no type erasure by boxing. Its
// channel calls are reached through the metatype of an element-typed
// subclass (`ReceiveKind`/`SendKind`), its channel through an unretained
// pointer that the case's one strong reference keeps valid, and a receive
// body through a capture-free `deliver` closure written where `Element` is
// concrete. `select` reads the cases in place, through pointers: copying
// one would cost a retain and a release per reference it holds (measured:
// that, and dynamic exclusivity checks on variables captured by recursive
// local functions, each cost more than the poll).
//
// The loop above is the non-generic `_select`, over type-erased
// `SelectOperation`s that move values only through typed pointers (see
// Channel.swift, "Specialization"). What a select puts on the stack: the
// operation list, the poll order, one waiter per case (see Waiter.swift)
// and one value slot shared by all receive cases (only the case that fires
// ever writes it). What it allocates: the builder's one case array, and a
// box per send case for its value (it must stay put while the select is
// parked). Go's selectgo allocates nothing; parameter packs would remove
// the array too, but `if` and `for` cases need a runtime-sized list anyway,
// and the array is one allocation, not one per case.
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
/// Callable from a green thread (parks) or an OS thread (blocks).
/// - Throws: `ChannelError.closed` if the chosen case sends on a closed
///   channel; `CancellationError` if the calling green thread is cancelled
///   while waiting; `SelectError.noCases` if there is no case; whatever the
///   chosen body throws.
/// - Precondition: at most one `default` case.
@inlinable
public func select<Result>(@SelectBuilder<Result> _ cases: () throws -> [SelectCase<Result>]) throws -> Result {
    let all = try cases()
    // The cases are read in place, through pointers: copying one costs a
    // retain and a release per reference it holds.
    return try all.withUnsafeBufferPointer { top in
        let count = SelectPlan.operationCount(top)
        // The channel operations, type-erased and unretained, in a stack
        // buffer: `all` keeps every channel and send value alive.
        return try withUnsafeTemporaryAllocation(of: SelectOperation.self, capacity: max(count, 1)) { buffer in
            var plan = SelectPlan<Result>(operations: buffer.baseAddress.unsafelyUnwrapped)
            plan.add(top)
            if plan.count == 0 && plan.timeoutCase == nil && plan.defaultCase == nil { throw SelectError.noCases }
            // One value slot for every receive case: only the case that
            // fires ever writes it (a poll that succeeds, or the one
            // counterpart that wins the wait's claim).
            return try withUnsafeTemporaryAllocation(byteCount: plan.slotSize, alignment: plan.slotAlignment) { slot in
                let value = slot.baseAddress.unsafelyUnwrapped
                let chosen = try _select(
                    plan.operations, count: plan.count, slot: value,
                    timeout: plan.timeoutCase?.pointee.duration, hasDefault: plan.defaultCase != nil)
                switch chosen {
                case _selectDefault: return try plan.defaultCase.unsafelyUnwrapped.pointee.body.unsafelyUnwrapped()
                case _selectTimedOut: return try plan.timeoutCase.unsafelyUnwrapped.pointee.body.unsafelyUnwrapped()
                default:
                    var k = chosen
                    let c = SelectPlan.channelCase(&k, in: top).unsafelyUnwrapped
                    return try c.pointee.run(closed: plan.operations[chosen].closed, slot: value)
                }
            }
        }
    }
}

/// What one select call found in its cases, read in place: pointers into
/// the case arrays, which stay valid for the whole call because `select`
/// holds the outer array (which holds the nested ones) and nothing
/// mutates them.
@usableFromInline
struct SelectPlan<Result> {
    /// The channel operations, in visit order (the indexes `_select`
    /// reports), and their number.
    @usableFromInline let operations: UnsafeMutablePointer<SelectOperation>
    @usableFromInline var count = 0
    /// The earliest timeout case, and the default case.
    @usableFromInline var timeoutCase: UnsafePointer<SelectCase<Result>>?
    @usableFromInline var defaultCase: UnsafePointer<SelectCase<Result>>?
    /// A slot that fits the value of every receive case.
    @usableFromInline var slotSize = 1
    @usableFromInline var slotAlignment = 1

    @inlinable
    init(operations: UnsafeMutablePointer<SelectOperation>) { self.operations = operations }

    /// Channel operations in `cases`, groups included.
    @inlinable
    static func operationCount(_ cases: UnsafeBufferPointer<SelectCase<Result>>) -> Int {
        guard let base = cases.baseAddress else { return 0 }
        var n = 0
        for i in cases.indices {
            switch base[i].tag {
            case .channel: n += 1
            case .timeout, .default: break
            case .group: n += base[i].group.unsafelyUnwrapped.withUnsafeBufferPointer { operationCount($0) }
            }
        }
        return n
    }

    /// Visits `cases` in order, groups depth-first.
    @inlinable
    mutating func add(_ cases: UnsafeBufferPointer<SelectCase<Result>>) {
        guard let base = cases.baseAddress else { return }
        for i in cases.indices {
            let c = base + i
            switch c.pointee.tag {
            case .channel:
                (operations + count).initialize(to: c.pointee.operation)
                count += 1
                slotSize = max(slotSize, c.pointee.valueSize)
                slotAlignment = max(slotAlignment, c.pointee.valueAlignment)
            case .timeout:
                if timeoutCase == nil || c.pointee.duration.unsafelyUnwrapped < timeoutCase.unsafelyUnwrapped.pointee.duration.unsafelyUnwrapped {
                    timeoutCase = c
                }
            case .default:
                precondition(defaultCase == nil, "GreenThreads: a select may have at most one default case")
                defaultCase = c
            case .group:
                c.pointee.group.unsafelyUnwrapped.withUnsafeBufferPointer { add($0) }
            }
        }
    }

    /// The channel case `add` visited as number `k` (counted down to 0).
    @inlinable
    static func channelCase(_ k: inout Int, in cases: UnsafeBufferPointer<SelectCase<Result>>) -> UnsafePointer<SelectCase<Result>>? {
        guard let base = cases.baseAddress else { return nil }
        for i in cases.indices {
            let c = base + i
            switch c.pointee.tag {
            case .channel:
                if k == 0 { return c }
                k -= 1
            case .group:
                if let found = c.pointee.group.unsafelyUnwrapped.withUnsafeBufferPointer({ channelCase(&k, in: $0) }) {
                    return found
                }
            case .timeout, .default:
                break
            }
        }
        return nil
    }
}

/// `_select` chose the default case.
@usableFromInline let _selectDefault = -1
/// `_select`'s timeout passed.
@usableFromInline let _selectTimedOut = -2

/// The select loop (see the file header). Returns the index of the
/// operation that happened, `_selectDefault` or `_selectTimedOut`. A
/// receive that happened left its value in `slot`.
@usableFromInline
func _select(
    _ ops: UnsafeMutablePointer<SelectOperation>, count n: Int, slot: UnsafeMutableRawPointer,
    timeout: Duration?, hasDefault: Bool
) throws -> Int {
    let deadline = timeout.map { Park.deadline(after: $0) }
    // One waiter per case, on this stack (see Waiter.swift): step 5 unlinks
    // every one of them before the loop goes round or returns.
    return try Waiter.withTemporary(count: max(n, 1)) { waiters in
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: max(2 * n, 1)) { scratch in
            let order = scratch.baseAddress.unsafelyUnwrapped
            let lockOrder = order + n
            // 1. The poll order: a fresh uniform permutation (Go's
            // pollorder), from the worker's generator or our own.
            SelectOrder.shuffle(order, count: n)
            // 2. The fast path: the first case of that order, alone under
            // its own lock. Completing it is linearizable on its own (it
            // was ready at the instant it completed); only a "nothing was
            // ready" answer needs every lock.
            if n > 0 && ops[order[0]].poll(slot) { return order[0] }
            SelectOrder.sortByChannel(lockOrder, count: n, ops)
            while true {
                // 3. Every channel locked (address order, each once), then
                // poll in the poll order: one consistent instant.
                SelectOrder.lockAll(ops, lockOrder, count: n)
                for k in 0..<n {
                    let i = order[k]
                    let (attempt, counterpart) = ops[i].pollHeld(slot)
                    if attempt != .wouldBlock {
                        SelectOrder.unlockAll(ops, lockOrder, count: n)
                        ops[i].closed = attempt == .closed
                        counterpart?.resume()
                        return i
                    }
                }
                if hasDefault {
                    SelectOrder.unlockAll(ops, lockOrder, count: n)
                    return _selectDefault
                }
                // 4. Nothing was ready at that instant: queue a waiter on
                // every case while still holding every lock, so no
                // counterpart can come between the poll and the queueing,
                // then release them and park.
                var queued = false
                let cause = Park.waitQueued(reason: .select, deadline: deadline, cancellable: true) { waker in
                    for i in 0..<n { ops[i].enqueueHeld(waiters + i, slot, waker) }
                    queued = true
                    SelectOrder.unlockAll(ops, lockOrder, count: n)
                    return true
                }
                if !queued {
                    // Cancelled before the wait began: nothing was queued.
                    SelectOrder.unlockAll(ops, lockOrder, count: n)
                    throw CancellationError()
                }
                // 5. Withdraw the losing registrations, then report the
                // winner: the one waiter a counterpart (or close) claimed.
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
                    // Unreachable by the protocol (a notification is a claim
                    // of one of our waiters); polling again is the safe
                    // answer to a bare wake.
                    for i in 0..<n { waiters[i] = Waiter() }
                    continue
                case .timedOut: return _selectTimedOut
                case .cancelled, .deadlock: throw CancellationError()
                }
            }
        }
    }
}

/// The orders a select visits its cases in: a uniform poll order, and the
/// global lock order (channel address) that keeps two selects from
/// deadlocking on each other's locks.
enum SelectOrder {
    /// Writes a uniform permutation of 0..<n into `order` (inside-out
    /// Fisher-Yates), drawing from the worker's generator, or on a plain
    /// OS thread from a generator seeded for this call. (Unretained: a
    /// strong reference to the worker would cost an atomic retain/release
    /// pair per select.)
    @inline(__always)
    static func shuffle(_ order: UnsafeMutablePointer<Int>, count n: Int) {
        if n == 1 {
            order[0] = 0
            return
        }
        if let raw = gt_current_worker() {
            Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
                for i in 0..<n {
                    let j = worker.local.pointee.rng.next(below: i + 1)
                    if j != i { order[i] = order[j] }
                    order[j] = i
                }
            }
        } else {
            var rng = FastRandom(seed: gt_random_seed())
            for i in 0..<n {
                let j = rng.next(below: i + 1)
                if j != i { order[i] = order[j] }
                order[j] = i
            }
        }
    }

    /// Writes 0..<n into `locks`, sorted by channel address: insertion sort
    /// for the usual handful of cases, heapsort (no allocation, n log n)
    /// beyond that.
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

    /// Locks every distinct channel, in `locks` order.
    static func lockAll(_ ops: UnsafeMutablePointer<SelectOperation>, _ locks: UnsafeMutablePointer<Int>, count n: Int) {
        var previous: UnsafeRawPointer?
        for k in 0..<n {
            let op = ops[locks[k]]
            if op.channel != previous { op.kind.lock(op.channel) }
            previous = op.channel
        }
    }

    /// Unlocks what `lockAll` locked.
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

/// One case of a `select`: `Case.receive`, `Case.send`, `Case.timeout` or
/// `Case.default`, written inside the select's braces. `Result` is what
/// the case bodies, and so the select, return.
public struct SelectCase<Result> {
    /// A case is a flat value: building one allocates nothing (a send case
    /// boxes its value), and copying one is a retain per reference it
    /// holds (most are nil for any one kind).
    @usableFromInline
    enum Tag: UInt8 { case channel, timeout, `default`, group }

    @usableFromInline let tag: Tag
    /// A channel case: the select loop's form of it (unretained)...
    @usableFromInline let operation: SelectOperation
    /// ...and what keeps its channel (and a send's value) alive.
    @usableFromInline let owner: AnyObject?
    /// A receive case's element size and alignment (0 and 1 otherwise):
    /// the select gives all its receive cases one slot that fits each.
    @usableFromInline let valueSize: Int
    @usableFromInline let valueAlignment: Int
    /// The body of any single case. A receive case's
    /// `(Element?) throws -> Result` body is stored reinterpreted as this
    /// type so that the case need not be generic over `Element`: every
    /// Swift closure is the same pair of a function pointer and a
    /// reference-counted context, so storing and copying it this way is
    /// exact, and only `deliver` ever calls it, after casting it back.
    @usableFromInline let body: (() throws -> Result)?
    /// A receive case's call of `body` with the value at the pointer
    /// (moved out), or with nil.
    @usableFromInline let deliver: ((@escaping () throws -> Result, UnsafeMutableRawPointer?) throws -> Result)?
    /// A timeout case's duration.
    @usableFromInline let duration: Duration?
    /// The members of a group (a block of several cases, an `if` or a
    /// `for`). An array, not a group object: the variadic array
    /// `buildBlock` gets is all a plain list of cases costs.
    @usableFromInline let group: [SelectCase<Result>]?

    @inlinable
    init(
        tag: Tag, operation: SelectOperation = SelectOperation(), owner: AnyObject? = nil,
        valueSize: Int = 0, valueAlignment: Int = 1, body: (() throws -> Result)?,
        deliver: ((@escaping () throws -> Result, UnsafeMutableRawPointer?) throws -> Result)? = nil,
        duration: Duration? = nil, group: [SelectCase<Result>]? = nil
    ) {
        self.tag = tag
        self.operation = operation
        self.owner = owner
        self.valueSize = valueSize
        self.valueAlignment = valueAlignment
        self.body = body
        self.deliver = deliver
        self.duration = duration
        self.group = group
    }

    @inlinable
    init(group: [SelectCase<Result>]) { self.init(tag: .group, body: nil, group: group) }

    /// Runs the body of the channel case that happened. `closed`: its
    /// channel was closed (a receive then passes nil; a send throws).
    @inlinable
    func run(closed: Bool, slot: UnsafeMutableRawPointer) throws -> Result {
        if let deliver { return try deliver(body.unsafelyUnwrapped, closed ? nil : slot) }
        if closed { throw ChannelError.closed }
        return try body.unsafelyUnwrapped()
    }

    /// Receives from `channel`. The body gets the value, or nil if the
    /// channel is closed and drained (a closed channel is always ready).
    @inlinable
    public static func receive<Element>(
        _ channel: Channel<Element>, _ body: @escaping (Element?) throws -> Result
    ) -> SelectCase {
        SelectCase(
            tag: .channel,
            operation: SelectOperation(
                channel: UnsafeRawPointer(Unmanaged.passUnretained(channel).toOpaque()),
                kind: ReceiveKind<Element>.self, sendAddress: nil),
            owner: channel,
            valueSize: MemoryLayout<Element>.size, valueAlignment: MemoryLayout<Element>.alignment,
            // SAFETY: `deliver` below casts it back to this very type (see
            // `body`).
            body: unsafeBitCast(body, to: (() throws -> Result).self),
            // No captures: written here, where `Element` is concrete, it is
            // a plain function pointer, and the unspecialized select loop
            // never forms an `Element?` (see Channel.swift, "Specialization").
            deliver: { erased, value in
                let body = unsafeBitCast(erased, to: ((Element?) throws -> Result).self)
                return try body(value.map { $0.assumingMemoryBound(to: Element.self).move() })
            })
    }

    /// Sends `value` on `channel`, then runs the body. If the channel is
    /// closed this case is ready and the select throws `ChannelError.closed`.
    @inlinable
    public static func send<Element>(
        _ channel: Channel<Element>, _ value: Element, _ body: @escaping () throws -> Result
    ) -> SelectCase {
        // The value needs an address that stays put while the select is
        // parked (a receiver copies it from there): a box, one allocation,
        // which also holds the channel. The value is the tuple's first
        // element, at the header's address.
        let box = ManagedBuffer<(Element, Channel<Element>), UInt8>.create(minimumCapacity: 0) { _ in (value, channel) }
        return SelectCase(
            tag: .channel,
            operation: SelectOperation(
                channel: UnsafeRawPointer(Unmanaged.passUnretained(channel).toOpaque()),
                kind: SendKind<Element>.self,
                sendAddress: UnsafeMutableRawPointer(box.withUnsafeMutablePointerToHeader { $0 })),
            owner: box, body: body)
    }

    /// Runs the body if no other case became ready within `duration`
    /// (measured from the start of the select).
    @inlinable
    public static func timeout(_ duration: Duration, _ body: @escaping () throws -> Result) -> SelectCase {
        SelectCase(tag: .timeout, body: body, duration: duration)
    }

    /// Runs the body at once if no other case is ready: the select never
    /// waits.
    @inlinable
    public static func `default`(_ body: @escaping () throws -> Result) -> SelectCase {
        SelectCase(tag: .default, body: body)
    }
}

/// The short name cases are written with: `Case.receive(ch) { v in ... }`.
/// (Where it clashes with a type of your own, write `SelectCase`.)
public typealias Case<Result> = SelectCase<Result>

/// Collects a select's cases; supports `if`, `if`/`else`, `switch` and `for`.
///
/// Every component is a single `SelectCase` (a block of several, an `if`
/// or a `for` becomes a group), so a plain list of cases costs the variadic
/// array of `buildBlock` only, instead of an array per case.
@resultBuilder
public enum SelectBuilder<Result> {
    @inlinable
    public static func buildExpression(_ c: consuming SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildBlock(_ cases: SelectCase<Result>...) -> SelectCase<Result> {
        cases.count == 1 ? cases[0] : SelectCase(group: cases)
    }
    @inlinable
    public static func buildOptional(_ c: SelectCase<Result>?) -> SelectCase<Result> {
        c ?? SelectCase(group: [])
    }
    @inlinable
    public static func buildEither(first c: consuming SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildEither(second c: consuming SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildArray(_ cases: [SelectCase<Result>]) -> SelectCase<Result> {
        SelectCase(group: cases)
    }
    @inlinable
    public static func buildFinalResult(_ c: consuming SelectCase<Result>) -> [SelectCase<Result>] {
        c.tag == .group ? c.group.unsafelyUnwrapped : [c]
    }
}

// MARK: - Operations

/// A channel case of one select call, type-erased for the select loop.
/// Used only by the selecting thread, except for its waiter, which follows
/// the hand-over protocol in Waiter.swift.
@usableFromInline
struct SelectOperation {
    /// The `Channel<Element>` that `kind` knows the type of.
    @usableFromInline let channel: UnsafeRawPointer
    @usableFromInline let kind: ChannelCaseKind.Type
    /// A send's value; nil for a receive, which uses the select's slot.
    @usableFromInline let sendAddress: UnsafeMutableRawPointer?
    /// Set by the loop on the operation that happened: its channel was
    /// closed, so nothing moved.
    @usableFromInline var closed = false

    /// What a case that is not a channel case holds; never used. (Not an
    /// optional `operation`: measured, that made the optimizer copy every
    /// case in the builder, through value witnesses.)
    @inlinable
    init() {
        channel = UnsafeRawPointer(bitPattern: 1).unsafelyUnwrapped
        kind = ChannelCaseKind.self
        sendAddress = nil
    }

    @inlinable
    init(channel: UnsafeRawPointer, kind: ChannelCaseKind.Type, sendAddress: UnsafeMutableRawPointer?) {
        self.channel = channel
        self.kind = kind
        self.sendAddress = sendAddress
    }

    /// Completes the operation now if that needs no waiting (a receive
    /// moves its value into `slot`).
    mutating func poll(_ slot: UnsafeMutableRawPointer) -> Bool {
        switch kind.poll(channel, sendAddress ?? slot) {
        case .done: return true
        case .closed:
            closed = true
            return true
        case .wouldBlock: return false
        }
    }

    /// `poll` for a select that holds every channel lock of its cases:
    /// never unlocks, and returns the counterpart it claimed (already given
    /// its value or result), to be resumed once every lock is released.
    func pollHeld(_ slot: UnsafeMutableRawPointer) -> (SelectAttempt, WaiterRef?) {
        kind.pollHeld(channel, sendAddress ?? slot)
    }

    /// Queues `waiter` (fresh, on the select's stack) for `waker`, under
    /// the channel's lock, which the select holds. A receive's counterpart
    /// will write the value into `slot`.
    func enqueueHeld(_ waiter: WaiterRef, _ slot: UnsafeMutableRawPointer, _ waker: UnownedWaker) {
        waiter.pointee.elem = sendAddress ?? slot
        kind.enqueueHeld(channel, waiter, waker)
    }

    /// Unlinks `waiter` if it is still queued.
    func unregister(_ waiter: WaiterRef) { kind.unregister(channel, waiter) }

    /// After a wait in which a counterpart completed this case (or closed
    /// its channel): records the outcome for the body.
    mutating func collect(_ waiter: WaiterRef) { closed = waiter.pointee.outcome == .closed }
}

/// How a poll went, for any element type.
enum SelectAttempt { case done, closed, wouldBlock }

/// The element-typed channel calls of a select case, reached through the
/// metatype of a subclass (one word, no allocation, no reference count).
/// The channel code they call runs unspecialized, as it did before.
@usableFromInline
class ChannelCaseKind {
    /// A poll: `value` is the receive slot or the send value.
    class func poll(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> SelectAttempt {
        fatalError("subclass responsibility")
    }
    /// `poll` under a lock the caller holds (see `SelectOperation.pollHeld`).
    class func pollHeld(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> (SelectAttempt, WaiterRef?) {
        fatalError("subclass responsibility")
    }
    /// `Channel.enqueueHeld` on this kind's queue.
    class func enqueueHeld(_ channel: UnsafeRawPointer, _ waiter: WaiterRef, _ waker: UnownedWaker) {
        fatalError("subclass responsibility")
    }
    /// The channel's lock, taken and released by a select around its
    /// one-instant poll.
    class func lock(_ channel: UnsafeRawPointer) {
        fatalError("subclass responsibility")
    }
    class func unlock(_ channel: UnsafeRawPointer) {
        fatalError("subclass responsibility")
    }
    /// `Channel.unregister` from this kind's queue.
    class func unregister(_ channel: UnsafeRawPointer, _ waiter: WaiterRef) {
        fatalError("subclass responsibility")
    }
}

/// A receive case's channel calls. The value ends up in the select's
/// shared slot: moved there by a poll, or written there by a sender while
/// the select is parked.
@usableFromInline
final class ReceiveKind<Element: Sendable>: ChannelCaseKind {
    @inline(__always)
    private static func channel(_ p: UnsafeRawPointer) -> Unmanaged<Channel<Element>> {
        Unmanaged.fromOpaque(p)
    }

    override class func poll(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> SelectAttempt {
        switch Self.channel(channel)._withUnsafeGuaranteedRef({
            $0.pollReceive(into: value.assumingMemoryBound(to: Element.self))
        }) {
        case .done: return .done
        case .closed: return .closed
        case .wouldBlock: return .wouldBlock
        }
    }

    override class func pollHeld(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> (SelectAttempt, WaiterRef?) {
        switch Self.channel(channel)._withUnsafeGuaranteedRef({
            $0.receiveStep(into: value.assumingMemoryBound(to: Element.self))
        }) {
        case .done: return (.done, nil)
        case .handOff(let sender):
            sender.pointee.outcome = .completed
            return (.done, sender)
        case .closed: return (.closed, nil)
        case .wouldBlock: return (.wouldBlock, nil)
        }
    }

    override class func enqueueHeld(_ channel: UnsafeRawPointer, _ waiter: WaiterRef, _ waker: UnownedWaker) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.enqueueHeld(waiter, in: .receivers, waker: waker) }
    }

    override class func lock(_ channel: UnsafeRawPointer) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.lock.lock() }
    }

    override class func unlock(_ channel: UnsafeRawPointer) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.lock.unlock() }
    }

    override class func unregister(_ channel: UnsafeRawPointer, _ waiter: WaiterRef) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.unregister(waiter, from: .receivers) }
    }
}

/// A send case's channel calls. The value stays in the case's box; a
/// receiver copies it from there.
@usableFromInline
final class SendKind<Element: Sendable>: ChannelCaseKind {
    @inline(__always)
    private static func channel(_ p: UnsafeRawPointer) -> Unmanaged<Channel<Element>> {
        Unmanaged.fromOpaque(p)
    }

    override class func poll(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> SelectAttempt {
        switch Self.channel(channel)._withUnsafeGuaranteedRef({
            $0.pollSend(from: value.assumingMemoryBound(to: Element.self))
        }) {
        case .done: return .done
        case .closed: return .closed
        case .wouldBlock: return .wouldBlock
        }
    }

    override class func pollHeld(_ channel: UnsafeRawPointer, _ value: UnsafeMutableRawPointer) -> (SelectAttempt, WaiterRef?) {
        let value = UnsafePointer(value.assumingMemoryBound(to: Element.self))
        switch Self.channel(channel)._withUnsafeGuaranteedRef({ $0.sendStep(value) }) {
        case .done: return (.done, nil)
        case .handOff(let receiver):
            Channel<Element>.fill(receiver, with: value)
            return (.done, receiver)
        case .closed: return (.closed, nil)
        case .wouldBlock: return (.wouldBlock, nil)
        }
    }

    override class func enqueueHeld(_ channel: UnsafeRawPointer, _ waiter: WaiterRef, _ waker: UnownedWaker) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.enqueueHeld(waiter, in: .senders, waker: waker) }
    }

    override class func lock(_ channel: UnsafeRawPointer) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.lock.lock() }
    }

    override class func unlock(_ channel: UnsafeRawPointer) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.lock.unlock() }
    }

    override class func unregister(_ channel: UnsafeRawPointer, _ waiter: WaiterRef) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.unregister(waiter, from: .senders) }
    }
}
