// Select.swift: waiting on several channel operations at once (Go's select).
//
// ## Design
//
// Go's selectgo locks every channel of the select at once (in address
// order), polls them, and if none is ready queues a waiter on each before
// unlocking them all. Here a select never holds two channel locks: the one
// shared `Waker` of the wait already makes the cases mutually exclusive
// (a channel must win its claim before it may complete a case), so each
// channel can be visited on its own.
//
// One round of a select:
//
//  1. Shuffle the cases (uniformly; Go's pollorder) and *poll* each in that
//     order: lock its channel, complete the operation if it needs no
//     waiting, unlock. The first that completes wins. Taking the first
//     ready case of a uniform permutation picks uniformly among the ready
//     ones, which is Go's fairness rule.
//  2. None was ready: run the default case if there is one.
//  3. Otherwise park. The register step queues a waiter on every channel,
//     in the same order, each under its own channel's lock. If a channel
//     turns out ready by then (a counterpart arrived after step 1), register
//     stops and reports "already happened": Park.wait withdraws the wait
//     (or, if an earlier channel claimed it meanwhile, waits for that
//     resume), and the round repeats from step 1.
//  4. After waking, unlink the waiters of every case that did not fire, so
//     no dead registration lingers in any channel; then run the fired
//     case's body, or the timeout body, or throw on cancellation.
//
// A case whose channel was claimed by a counterpart has already happened
// (a value moved) by the time the select resumes: that is the chosen case.
//
// ## Specialization and allocation
//
// `select`, the case constructors and the builder are `@inlinable`, so
// building the cases is specialized in the caller. The loop above is the
// non-generic `_select`, over type-erased `SelectOperation`s that move
// values only through typed pointers (see Channel.swift, "Specialization").
// What a select puts on the stack: the operation list, the poll order, one
// waiter per case (see Waiter.swift) and one value slot shared by all
// receive cases (only the case that fires ever writes it). What it still
// allocates: the builder's case array and one object per case; a send
// case that parks also copies its value to the heap. Those objects are
// most of what a ready select costs now (Go's selectgo allocates nothing);
// a builder that keeps the cases in a parameter pack, specialized in the
// caller, would remove them.
//
// ## Rejected alternative
//
// Locking all channels at once (Go's way) needs a global lock order and
// holds N spin locks while shuffling and queueing; on green threads a
// long-held spin lock stalls whole workers. The cost of the chosen design is
// the retry in step 3, which only happens when a counterpart arrives
// during the few hundred nanoseconds between poll and registration. Two
// selects registering against each other may make one of them retry, but
// a retry always follows a live counterpart, which the next poll claims
// unless the counterpart completed elsewhere: either way someone progresses.

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
    var count = 0
    for c in all { count += c.operationCount }
    // The operations, unretained, in a stack buffer: the loop needs them
    // type-erased, and a heap array per select would cost more than
    // everything else a ready select does. `all` keeps them alive, for
    // which its lifetime is extended over the whole wait.
    return try withExtendedLifetime(all) {
        try withUnsafeTemporaryAllocation(of: Unmanaged<SelectOperation>.self, capacity: max(count, 1)) { ops in
            var n = 0
            var timeout: TimeoutCase<Result>?
            var fallback: TypedSelectOperation<Result>?
            var slotSize = 0, slotAlignment = 1
            func add(_ c: SelectCase<Result>) {
                guard let node = c.node else {
                    for member in c.group { add(member) }
                    return
                }
                switch node.role {
                case .channel:
                    ops[n] = Unmanaged.passUnretained(node)
                    n += 1
                    slotSize = max(slotSize, node.valueSize)
                    slotAlignment = max(slotAlignment, node.valueAlignment)
                case .timeout:
                    // SAFETY (both casts): `role` names the subclass.
                    let t = unsafeDowncast(node, to: TimeoutCase<Result>.self)
                    if timeout == nil || t.duration < timeout.unsafelyUnwrapped.duration { timeout = t }
                case .default:
                    precondition(fallback == nil, "GreenThreads: a select may have at most one default case")
                    fallback = node
                }
            }
            for c in all { add(c) }
            if n == 0 && timeout == nil && fallback == nil { throw SelectError.noCases }
            // One value slot for every receive case: only the case that
            // fires ever writes it (a poll that succeeds, or the one
            // counterpart that wins the wait's claim).
            return try withUnsafeTemporaryAllocation(byteCount: max(slotSize, 1), alignment: slotAlignment) { slot in
                let value = slot.baseAddress.unsafelyUnwrapped
                let chosen = try _select(
                    UnsafeBufferPointer(rebasing: ops[..<n]), slot: value,
                    timeout: timeout?.duration, hasDefault: fallback != nil)
                switch chosen {
                case _selectDefault: return try fallback.unsafelyUnwrapped.run(value)
                case _selectTimedOut: return try (timeout.unsafelyUnwrapped as TypedSelectOperation<Result>).run(value)
                default:
                    // SAFETY: every operation came from a SelectCase<Result>,
                    // and `all` still holds it.
                    let op = ops[chosen].takeUnretainedValue()
                    return try unsafeDowncast(op, to: TypedSelectOperation<Result>.self).run(value)
                }
            }
        }
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
    _ unmanagedOps: UnsafeBufferPointer<Unmanaged<SelectOperation>>, slot: UnsafeMutableRawPointer,
    timeout: Duration?, hasDefault: Bool
) throws -> Int {
    // SAFETY: the caller's case array keeps every operation alive.
    let ops = UnsafeSelectOperations(unmanagedOps)
    let n = ops.count
    let deadline = timeout.map { Park.deadline(after: $0) }
    var threadRandom: FastRandom?  // an OS thread's own generator, seeded once
    // One waiter per case, on this stack (see Waiter.swift): step 4 unlinks
    // every one of them before the loop goes round or returns.
    return try Waiter.withTemporary(count: max(n, 1)) { waiters in
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: max(n, 1)) { order in
            while true {
                // 1. Poll in a fresh uniform order (inside-out Fisher-Yates),
                // drawn from the worker's generator (looked up once per round:
                // after a park we may be on another worker), or our own.
                // (Unretained: a strong reference to the worker would cost
                // an atomic retain/release pair per select.)
                let worker = gt_current_worker().map { Unmanaged<Worker>.fromOpaque($0) }
                if worker == nil && threadRandom == nil { threadRandom = FastRandom(seed: gt_random_seed()) }
                for i in 0..<n {
                    let j = worker?._withUnsafeGuaranteedRef { $0.local.pointee.rng.next(below: i + 1) }
                        ?? threadRandom!.next(below: i + 1)
                    if j != i { order[i] = order[j] }
                    order[j] = i
                }
                for k in 0..<n where ops[order[k]].poll(slot) {
                    return order[k]
                }
                // 2. Nothing ready.
                if hasDefault { return _selectDefault }
                // 3. Register everywhere and park.
                for i in 0..<n { waiters[i] = Waiter() }
                let cause = Park.wait(reason: .select, deadline: deadline, cancellable: true) { waker in
                    for k in 0..<n {
                        let i = order[k]
                        if !ops[i].register(waiters + i, slot, waker) {
                            return false  // became ready meanwhile: retry the round
                        }
                    }
                    return true
                }
                // 4. Withdraw the losing registrations, then report the winner.
                // A waiter that was never queued this round has no target.
                var fired = -1
                for i in 0..<n where waiters[i].target != nil {
                    if waiters[i].outcome != .waiting {
                        ops[i].collect(waiters + i)
                        fired = i
                    } else {
                        ops[i].unregister(waiters + i)
                    }
                }
                if fired >= 0 { return fired }
                switch cause {
                case .notified: continue  // a channel became ready during registration
                case .timedOut: return _selectTimedOut
                case .cancelled, .deadlock: throw CancellationError()
                }
            }
        }
    }
}

/// Indexes unretained operations without retain/release traffic.
private struct UnsafeSelectOperations {
    let base: UnsafeBufferPointer<Unmanaged<SelectOperation>>
    init(_ base: UnsafeBufferPointer<Unmanaged<SelectOperation>>) { self.base = base }
    var count: Int { base.count }
    subscript(i: Int) -> SelectOperation { base[i].takeUnretainedValue() }
}

/// One case of a `select`: `Case.receive`, `Case.send`, `Case.timeout` or
/// `Case.default`, written inside the select's braces. `Result` is what
/// the case bodies, and so the select, return.
public struct SelectCase<Result> {
    /// A single case: every kind is one object, so copying a case (the
    /// builder's arrays copy them through value witnesses) is a retain or
    /// two. Nil for a group.
    @usableFromInline let node: TypedSelectOperation<Result>?
    /// The members of a group (a block of several cases, an `if` or a
    /// `for`); empty for a single case. An array, not a group object: the
    /// variadic array `buildBlock` gets is all a plain list of cases costs.
    @usableFromInline let group: [SelectCase<Result>]

    @inlinable
    init(_ node: TypedSelectOperation<Result>) {
        self.node = node
        group = []
    }

    @inlinable
    init(group: [SelectCase<Result>]) {
        node = nil
        self.group = group
    }

    /// Channel operations in this case, groups included.
    @inlinable
    var operationCount: Int {
        if let node { return node.role == .channel ? 1 : 0 }
        var n = 0
        for member in group { n += member.operationCount }
        return n
    }

    /// Receives from `channel`. The body gets the value, or nil if the
    /// channel is closed and drained (a closed channel is always ready).
    @inlinable
    public static func receive<Element>(
        _ channel: Channel<Element>, _ body: @escaping (Element?) throws -> Result
    ) -> SelectCase {
        SelectCase(ReceiveOperation(channel: channel, body: body) { op, value in
            try op.body(value.map { $0.assumingMemoryBound(to: Element.self).move() })
        })
    }

    /// Sends `value` on `channel`, then runs the body. If the channel is
    /// closed this case is ready and the select throws `ChannelError.closed`.
    @inlinable
    public static func send<Element>(
        _ channel: Channel<Element>, _ value: Element, _ body: @escaping () throws -> Result
    ) -> SelectCase {
        SelectCase(SendOperation(channel: channel, value: value, body: body))
    }

    /// Runs the body if no other case became ready within `duration`
    /// (measured from the start of the select).
    @inlinable
    public static func timeout(_ duration: Duration, _ body: @escaping () throws -> Result) -> SelectCase {
        SelectCase(TimeoutCase(duration: duration, body: body))
    }

    /// Runs the body at once if no other case is ready: the select never
    /// waits.
    @inlinable
    public static func `default`(_ body: @escaping () throws -> Result) -> SelectCase {
        SelectCase(DefaultCase(body: body))
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
    public static func buildExpression(_ c: SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildBlock(_ cases: SelectCase<Result>...) -> SelectCase<Result> {
        cases.count == 1 ? cases[0] : SelectCase(group: cases)
    }
    @inlinable
    public static func buildOptional(_ c: SelectCase<Result>?) -> SelectCase<Result> {
        c ?? SelectCase(group: [])
    }
    @inlinable
    public static func buildEither(first c: SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildEither(second c: SelectCase<Result>) -> SelectCase<Result> { c }
    @inlinable
    public static func buildArray(_ cases: [SelectCase<Result>]) -> SelectCase<Result> {
        SelectCase(group: cases)
    }
    @inlinable
    public static func buildFinalResult(_ c: SelectCase<Result>) -> [SelectCase<Result>] {
        c.node == nil ? c.group : [c]
    }
}

// MARK: - Operations

/// A channel case of one select call, type-erased for the select loop.
/// Used only by the selecting thread, except for its waiter, which follows
/// the hand-over protocol in Waiter.swift.
@usableFromInline
class SelectOperation {
    /// What a case is; only `.channel` ones reach the select loop.
    @usableFromInline
    enum Role: UInt8 { case channel, timeout, `default` }

    @usableFromInline let role: Role
    /// A receive case's element size and alignment: the select gives all
    /// its receive cases one slot that fits each of them.
    @usableFromInline let valueSize: Int
    @usableFromInline let valueAlignment: Int

    @usableFromInline
    init(role: Role, valueSize: Int = 0, valueAlignment: Int = 1) {
        self.role = role
        self.valueSize = valueSize
        self.valueAlignment = valueAlignment
    }

    /// Completes the operation now if that needs no waiting (a receive
    /// moves its value into `slot`).
    func poll(_ slot: UnsafeMutableRawPointer) -> Bool { fatalError("subclass responsibility") }
    /// Queues `waiter` (fresh, on the select's stack) for `waker`; false
    /// (nothing queued) if the operation could complete now. A receive's
    /// counterpart will write the value into `slot`.
    func register(_ waiter: WaiterRef, _ slot: UnsafeMutableRawPointer, _ waker: Waker) -> Bool {
        fatalError("subclass responsibility")
    }
    /// Unlinks `waiter` if it is still queued.
    func unregister(_ waiter: WaiterRef) { fatalError("subclass responsibility") }
    /// After a wait in which a counterpart completed this case (or closed
    /// its channel): records the outcome in `waiter` for the body.
    func collect(_ waiter: WaiterRef) { fatalError("subclass responsibility") }
}

/// A select case that knows its body's result type: a channel operation,
/// or one of the other kinds below.
@usableFromInline
class TypedSelectOperation<Result>: SelectOperation {
    /// Runs the case's body with the operation's outcome (a receive's value
    /// is in `slot`). Called once, after `poll` or `collect` reported the
    /// case as the one that happened.
    @usableFromInline
    func run(_ slot: UnsafeMutableRawPointer) throws -> Result { fatalError("subclass responsibility") }
}

/// A receive case. The value ends up in the select's shared slot: moved
/// there by a poll, or written there by a sender while the select is
/// parked.
///
/// This code runs unspecialized, so it never forms an `Element?` (every
/// use of `Optional<Element>` would cost a metadata lookup, see
/// Waiter.swift): the body is called through `deliver`, a closure without
/// captures that `Case.receive` writes in the caller's module, where
/// `Element` is a concrete type.
@usableFromInline
final class ReceiveOperation<Element: Sendable, Result>: TypedSelectOperation<Result> {
    private let channel: Channel<Element>
    @usableFromInline let body: (Element?) throws -> Result
    /// Calls `body` with the value at the pointer (moved out), or nil.
    private let deliver: (ReceiveOperation, UnsafeMutableRawPointer?) throws -> Result
    /// The slot holds a value (else the channel was closed and drained).
    /// Unchecked: only the selecting thread touches an operation, and the
    /// dynamic exclusivity check cost more than the poll it guards.
    @exclusivity(unchecked) private var hasValue = false

    @usableFromInline
    init(
        channel: Channel<Element>, body: @escaping (Element?) throws -> Result,
        deliver: @escaping (ReceiveOperation, UnsafeMutableRawPointer?) throws -> Result
    ) {
        self.channel = channel
        self.body = body
        self.deliver = deliver
        super.init(role: .channel, valueSize: MemoryLayout<Element>.size, valueAlignment: MemoryLayout<Element>.alignment)
    }

    override func poll(_ slot: UnsafeMutableRawPointer) -> Bool {
        switch channel.pollReceive(into: slot.assumingMemoryBound(to: Element.self)) {
        case .done:
            hasValue = true
            return true
        case .closed:
            return true
        case .wouldBlock:
            return false
        }
    }

    override func register(_ waiter: WaiterRef, _ slot: UnsafeMutableRawPointer, _ waker: Waker) -> Bool {
        waiter.pointee.elem = slot
        return channel.register(waiter, in: .receivers, waker: waker)
    }

    override func unregister(_ waiter: WaiterRef) {
        channel.unregister(waiter, from: .receivers)
    }

    override func collect(_ waiter: WaiterRef) {
        hasValue = waiter.pointee.outcome == .completed
    }

    override func run(_ slot: UnsafeMutableRawPointer) throws -> Result {
        try deliver(self, hasValue ? slot : nil)
    }
}

/// A send case. The value is offered from a stack copy when polling, and
/// from a slot that stays put only while the select is parked.
@usableFromInline
final class SendOperation<Element: Sendable, Result>: TypedSelectOperation<Result> {
    private let channel: Channel<Element>
    private let value: Element
    private let body: () throws -> Result
    /// The parked select's offer: a copy of `value` a receiver copies from.
    @exclusivity(unchecked) private var slot: UnsafeMutablePointer<Element>?
    /// The channel turned out to be closed: `run` throws.
    @exclusivity(unchecked) private var foundClosed = false

    @usableFromInline
    init(channel: Channel<Element>, value: Element, body: @escaping () throws -> Result) {
        self.channel = channel
        self.value = value
        self.body = body
        super.init(role: .channel)
    }

    deinit {
        if let slot {
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
    }

    override func poll(_ slot: UnsafeMutableRawPointer) -> Bool {
        switch withUnsafePointer(to: value, { channel.pollSend(from: $0) }) {
        case .done:
            return true
        case .closed:
            foundClosed = true
            return true
        case .wouldBlock:
            return false
        }
    }

    override func register(_ waiter: WaiterRef, _ receiveSlot: UnsafeMutableRawPointer, _ waker: Waker) -> Bool {
        if slot == nil {
            slot = .allocate(capacity: 1)
            slot.unsafelyUnwrapped.initialize(to: value)
        }
        waiter.pointee.elem = UnsafeMutableRawPointer(slot.unsafelyUnwrapped)
        return channel.register(waiter, in: .senders, waker: waker)
    }

    override func unregister(_ waiter: WaiterRef) {
        channel.unregister(waiter, from: .senders)
    }

    override func collect(_ waiter: WaiterRef) {
        foundClosed = waiter.pointee.outcome == .closed
    }

    override func run(_ slot: UnsafeMutableRawPointer) throws -> Result {
        if foundClosed { throw ChannelError.closed }
        return try body()
    }
}

/// `Case.timeout`: its body runs when `_select` reports the deadline.
@usableFromInline
final class TimeoutCase<Result>: TypedSelectOperation<Result> {
    @usableFromInline let duration: Duration
    private let body: () throws -> Result

    @usableFromInline
    init(duration: Duration, body: @escaping () throws -> Result) {
        self.duration = duration
        self.body = body
        super.init(role: .timeout)
    }

    override func run(_ slot: UnsafeMutableRawPointer) throws -> Result { try body() }
}

/// `Case.default`: its body runs when nothing was ready.
@usableFromInline
final class DefaultCase<Result>: TypedSelectOperation<Result> {
    private let body: () throws -> Result

    @usableFromInline
    init(body: @escaping () throws -> Result) {
        self.body = body
        super.init(role: .default)
    }

    override func run(_ slot: UnsafeMutableRawPointer) throws -> Result { try body() }
}
