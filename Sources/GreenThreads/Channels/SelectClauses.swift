// SelectClauses.swift: what a select's braces build: the cases, and the
// passes a select makes over them (the groups and the result builder are in
// SelectGroups.swift).
//
// Every case is its own small struct, typed by its channel's element
// (`ReceiveClause<Element, Result>`, `SendClause<Element, Result>`), and a
// block of cases nested pairs (`SelectPair`), an `if` an optional,
// an `if`/`else` or `switch` an either, a `for` an array. So a select over
// a fixed list of cases builds one stack value: no array, no box for a
// send's value, no type erasure, and `select` (inlined) runs its fast
// path, a poll of one case, fully specialized in the caller: for a
// buffered `Int` channel, the same plain loads and stores as `tryReceive`.
// Only a `for` group allocates (its array).
//
// The clause protocol's requirements are the select's passes over its
// cases, each counting channel cases down with `k` to reach the k-th:
//  * `_measure`: how many channel cases, the receive slot and send value
//    sizes, the earliest timeout, the default;
//  * `_ready`: the fast path's pass over the channels' readiness words,
//    recording each and marking the cases whose direction looked ready;
//  * `_pollOne`: the fast path's poll of the case it drew, under that
//    channel's own lock;
//  * `_quiet`: the second pass of a select-with-default's double collect
//    of the readiness words (Select.swift, "Default without locks");
//  * `_pollHeld`: one case under every lock of the select, which it does
//    not release: a receive leaves its value in the select's slot, and a
//    claimed counterpart is returned, to be resumed after unlocking;
//  * `_lock`: takes or releases the lock of one channel case, for the
//    select's lock order (the order itself comes from the erased
//    operations' channel addresses);
//  * `_erase` / `_destroyErased`: the slow path's type-erased operations
//    (SelectOperation.swift), with copies of the send values at addresses
//    that stay put while the select is parked (a receiver copies from
//    there);
//  * `_run`, `_runTimeout`, `_runDefault`: the body of the case that won;
//  * `_release`: drops what building the cases retained (below).
//
// ## Clauses are plain bits
//
// A clause holds its channel as an `Unmanaged` and its body as a
// `_SelectBody` (the closure's two words), each retained by hand when the
// case is built and released by `_release` when the select returns or
// throws. So a clause tree is a trivial value: the caller's code copies and
// drops it as bytes. With strong fields the tree of a 4-case select is a
// nested generic struct of 8 references, which the compiler destroys
// through an outlined, metadata-driven value-witness call per select, and
// whose channel copies it cannot prove redundant across the channel calls
// of the fast path: together two thirds of a fan-in select's time
// (`gt-bench run select`, one worker). A send case's value stays a plain
// stored `Element`: a send of a class or string keeps that cost.
//
// The retain is still needed: a case may name a channel nothing else holds
// (`Case.receive(after(.seconds(1)))`, Go's `<-time.After(d)`), which dies
// when the builder's statement ends. The builder closure does not throw, so
// every tree it builds is complete and is released exactly once.

/// A case, or a group of cases, of a `select`: what `Case.receive`,
/// `Case.send`, `Case.timeout` and `Case.default` return, and what the
/// select builder makes of blocks, `if`, `switch` and `for`.
///
/// The requirements are the select's internal passes; conforming types of
/// your own are not supported.
public protocol SelectClause<Result> {
    /// What the case bodies, and so the select, return.
    associatedtype Result
    func _measure(_ shape: inout _SelectShape)
    func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool
    func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int)
    func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool
    func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled
    func _lock(_ k: inout Int, unlock: Bool)
    func _erase(_ erasure: inout _SelectErasure)
    func _destroyErased(_ erasure: inout _SelectErasure)
    func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool
    func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool
    func _runDefault(_ result: inout Result?) throws -> Bool
    func _release()
}

/// What a clause that is not a channel case (a timeout, a default, an
/// empty block) does in the passes that concern only channel cases, and
/// what a clause that holds no timeout or default does in theirs.
extension SelectClause {
    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool { false }
    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {}
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool { true }
    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled { _SelectPolled(.wouldBlock) }
    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) {}
    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {}
    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) {}
    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool { false }
    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool { false }
    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool { false }
    @inlinable
    public func _release() {}
}

/// A select's cases, measured: see `SelectClause`.
public struct _SelectShape {
    /// Channel cases, groups included.
    @usableFromInline var operations = 0
    /// A slot that fits the value of every receive case.
    @usableFromInline var slotSize = 1
    @usableFromInline var slotAlignment = 1
    /// Room for a copy of every send case's value, laid out in case order.
    @usableFromInline var sendBytes = 0
    @usableFromInline var sendAlignment = 1
    /// Timeout cases, and the earliest one (its index among them).
    @usableFromInline var timeouts = 0
    @usableFromInline var earliestTimeout: Duration?
    @usableFromInline var earliestTimeoutIndex = 0
    @usableFromInline var defaults = 0

    @inlinable init() {}

    /// Where the next send value goes, `sendBytes` counting so far.
    @inlinable
    static func place(_ offset: Int, size: Int, alignment: Int) -> Int {
        (offset + alignment - 1) & ~(alignment - 1)
    }
}

/// What `_pollHeld` found: how the poll went and, if it claimed a parked
/// counterpart, that counterpart, to be resumed once every lock is released.
public struct _SelectPolled {
    @usableFromInline let attempt: SelectAttempt
    @usableFromInline let counterpart: WaiterRef?

    @inlinable
    init(_ attempt: SelectAttempt, _ counterpart: WaiterRef? = nil) {
        self.attempt = attempt
        self.counterpart = counterpart
    }

    /// A channel's step, for the select.
    @inlinable
    init<Element>(_ step: Channel<Element>.Step) {
        switch step {
        case .done: self.init(.done)
        case .handOff(let counterpart): self.init(.done, counterpart)
        case .closed: self.init(.closed)
        case .wouldBlock: self.init(.wouldBlock)
        }
    }
}

/// A select's slow-path operations being written: see `SelectClause`.
public struct _SelectErasure {
    @usableFromInline let operations: UnsafeMutablePointer<SelectOperation>
    @usableFromInline var count = 0
    /// The copies of the send values (`_SelectShape.sendBytes`).
    @usableFromInline let values: UnsafeMutableRawPointer
    @usableFromInline var valueOffset = 0

    @inlinable
    init(operations: UnsafeMutablePointer<SelectOperation>, values: UnsafeMutableRawPointer) {
        self.operations = operations
        self.values = values
    }

    /// The address of the next send value of type `T`.
    @inlinable
    mutating func nextValue<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        let offset = _SelectShape.place(valueOffset, size: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
        valueOffset = offset + MemoryLayout<T>.size
        return (values + offset).assumingMemoryBound(to: T.self)
    }
}

/// A case's body as the closure's two words (function, context), with the
/// context retained by hand: see "Clauses are plain bits" above.
///
/// A thick Swift function value is a function pointer and an optional
/// reference-counted context, in that order, on every platform. `Function`
/// is a type parameter, so the closure is always taken and given back at
/// the generic (most general) abstraction, whichever code, specialized or
/// not, builds or calls it.
public struct _SelectBody<Function> {
    @usableFromInline let function: UnsafeRawPointer
    @usableFromInline let context: UnsafeMutableRawPointer?

    @inlinable
    init(retaining body: Function) {
        (function, context) = unsafeBitCast(body, to: (UnsafeRawPointer, UnsafeMutableRawPointer?).self)
        if let context { _ = Unmanaged<AnyObject>.fromOpaque(context).retain() }
    }

    /// The closure, as a new reference to its context.
    @inlinable
    var closure: Function { unsafeBitCast((function, context), to: Function.self) }

    @inlinable
    func release() {
        if let context { Unmanaged<AnyObject>.fromOpaque(context).release() }
    }
}

/// `_lock` for a channel case: the k-th case takes or releases its
/// channel's lock.
@inlinable
func _selectLockCase<Element>(_ channel: Unmanaged<Channel<Element>>, _ k: inout Int, unlock: Bool) {
    k -= 1
    guard k == -1 else { return }
    channel._withUnsafeGuaranteedRef { if unlock { $0.lock.unlock() } else { $0.lock.lock() } }
}

/// `_ready` for a channel case: records the channel's readiness word, and
/// sets the case's bit in `mask` if its direction looked ready.
@inlinable @inline(__always)
func _selectReadyCase<Element>(_ channel: Unmanaged<Channel<Element>>, direction: UInt,
                               _ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
    let word = channel._withUnsafeGuaranteedRef { $0.readinessWord() }
    words[i] = word
    if word & direction != 0 { mask |= 1 &<< UInt(i) }
    i += 1
}

/// `_quiet` for a channel case: the first pass records the channel's
/// readiness word and answers whether the case's direction was not ready;
/// the second answers whether the word is unchanged.
@inlinable
func _selectQuietCase<Element>(_ channel: Unmanaged<Channel<Element>>, direction: UInt,
                               _ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
    let word = channel._withUnsafeGuaranteedRef { $0.readinessWord() }
    defer { i += 1 }
    if recheck { return words[i] == word }
    words[i] = word
    return word & direction == 0
}

/// The namespace cases are written with: `Case.receive(ch) { v in ... }`.
///
/// Each case names its type (`Case.`, or `SelectCase.`): a line starting
/// with a bare `.receive` would continue the previous line's expression as
/// a method call, not start a new case. (Where `Case` clashes with a type
/// of your own, write `SelectCase`.)
public enum SelectCase<Result> {
    /// Receives from `channel`. The body gets the value, or nil if the
    /// channel is closed and drained (a closed channel is always ready).
    @inlinable
    public static func receive<Element>(
        _ channel: Channel<Element>, _ body: @escaping (Element?) throws -> Result
    ) -> ReceiveClause<Element, Result> {
        ReceiveClause(channel: channel, body: body)
    }

    /// Sends `value` on `channel`, then runs the body. If the channel is
    /// closed this case is ready and the select throws `ChannelError.closed`.
    @inlinable
    public static func send<Element>(
        _ channel: Channel<Element>, _ value: Element, _ body: @escaping () throws -> Result
    ) -> SendClause<Element, Result> {
        SendClause(channel: channel, value: value, body: body)
    }

    /// Runs the body if no other case became ready within `duration`
    /// (measured from the start of the select).
    @inlinable
    public static func timeout(_ duration: Duration, _ body: @escaping () throws -> Result) -> TimeoutClause<Result> {
        TimeoutClause(duration: duration, body: body)
    }

    /// Runs the body at once if no other case is ready: the select never
    /// waits.
    @inlinable
    public static func `default`(_ body: @escaping () throws -> Result) -> DefaultClause<Result> {
        DefaultClause(body: body)
    }
}

/// The short name cases are written with: `Case.receive(ch) { v in ... }`.
public typealias Case<Result> = SelectCase<Result>

/// A receive case (`Case.receive`).
public struct ReceiveClause<Element: Sendable, Result>: SelectClause {
    /// Retained by hand in `init`, released in `_release`; used through
    /// `_withUnsafeGuaranteedRef`, which copies no reference per use.
    @usableFromInline let channel: Unmanaged<Channel<Element>>
    @usableFromInline let handler: _SelectBody<(Element?) throws -> Result>

    @inlinable
    init(channel: Channel<Element>, body: @escaping (Element?) throws -> Result) {
        self.channel = Unmanaged.passUnretained(channel).retain()
        self.handler = _SelectBody(retaining: body)
    }

    @inlinable
    public func _release() {
        channel.release()
        handler.release()
    }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        shape.operations += 1
        shape.slotSize = max(shape.slotSize, MemoryLayout<Element>.size)
        shape.slotAlignment = max(shape.slotAlignment, MemoryLayout<Element>.alignment)
    }

    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        k -= 1
        guard k == -1 else { return false }
        return try withUnsafeTemporaryAllocation(of: Element.self, capacity: 1) { buffer in
            let slot = buffer.baseAddress.unsafelyUnwrapped
            switch channel._withUnsafeGuaranteedRef({ $0.pollReceive(into: slot) }) {
            case .done: result = try handler.closure(slot.move())
            case .closed: result = try handler.closure(nil)
            case .wouldBlock: return false
            }
            return true
        }
    }

    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        _selectReadyCase(channel, direction: Channel<Element>.receiveReady, words, &mask, &i)
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        _selectQuietCase(channel, direction: Channel<Element>.receiveReady, words, &i, recheck: recheck)
    }

    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        k -= 1
        guard k == -1 else { return _SelectPolled(.wouldBlock) }
        return channel._withUnsafeGuaranteedRef {
            _SelectPolled($0.receiveStep(into: slot.assumingMemoryBound(to: Element.self)))
        }
    }

    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) { _selectLockCase(channel, &k, unlock: unlock) }

    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {
        erasure.operations[erasure.count] = SelectOperation(
            channel: UnsafeRawPointer(channel.toOpaque()),
            kind: ReceiveKind<Element>.self, sendAddress: nil)
        erasure.count += 1
    }

    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        k -= 1
        guard k == -1 else { return false }
        result = try handler.closure(closed ? nil : slot.assumingMemoryBound(to: Element.self).move())
        return true
    }

}

/// A send case (`Case.send`).
public struct SendClause<Element: Sendable, Result>: SelectClause {
    /// Retained by hand in `init`, released in `_release` (as a receive
    /// case's).
    @usableFromInline let channel: Unmanaged<Channel<Element>>
    @usableFromInline let value: Element
    @usableFromInline let handler: _SelectBody<() throws -> Result>

    @inlinable
    init(channel: Channel<Element>, value: Element, body: @escaping () throws -> Result) {
        self.channel = Unmanaged.passUnretained(channel).retain()
        self.value = value
        self.handler = _SelectBody(retaining: body)
    }

    @inlinable
    public func _release() {
        channel.release()
        handler.release()
    }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        shape.operations += 1
        let alignment = MemoryLayout<Element>.alignment
        shape.sendBytes = _SelectShape.place(shape.sendBytes, size: MemoryLayout<Element>.size, alignment: alignment)
            + MemoryLayout<Element>.size
        shape.sendAlignment = max(shape.sendAlignment, alignment)
    }

    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        k -= 1
        guard k == -1 else { return false }
        switch withUnsafePointer(to: value, { v in channel._withUnsafeGuaranteedRef { $0.pollSend(from: v) } }) {
        case .done: result = try handler.closure()
        case .closed: throw ChannelError.closed
        case .wouldBlock: return false
        }
        return true
    }

    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        _selectReadyCase(channel, direction: Channel<Element>.sendReady, words, &mask, &i)
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        _selectQuietCase(channel, direction: Channel<Element>.sendReady, words, &i, recheck: recheck)
    }

    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        k -= 1
        guard k == -1 else { return _SelectPolled(.wouldBlock) }
        return withUnsafePointer(to: value) { v in channel._withUnsafeGuaranteedRef { _SelectPolled($0.sendStep(v)) } }
    }

    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) { _selectLockCase(channel, &k, unlock: unlock) }

    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {
        // A copy that stays put while the select is parked: a receiver
        // copies the value from there.
        let copy = erasure.nextValue(Element.self)
        copy.initialize(to: value)
        erasure.operations[erasure.count] = SelectOperation(
            channel: UnsafeRawPointer(channel.toOpaque()),
            kind: SendKind<Element>.self, sendAddress: UnsafeMutableRawPointer(copy))
        erasure.count += 1
    }

    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) {
        erasure.nextValue(Element.self).deinitialize(count: 1)
    }

    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        k -= 1
        guard k == -1 else { return false }
        if closed { throw ChannelError.closed }
        result = try handler.closure()
        return true
    }

}

/// A timeout case (`Case.timeout`).
public struct TimeoutClause<Result>: SelectClause {
    @usableFromInline let duration: Duration
    @usableFromInline let handler: _SelectBody<() throws -> Result>

    @inlinable
    init(duration: Duration, body: @escaping () throws -> Result) {
        self.duration = duration
        self.handler = _SelectBody(retaining: body)
    }

    @inlinable
    public func _release() { handler.release() }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        if shape.earliestTimeout.map({ duration < $0 }) ?? true {
            shape.earliestTimeout = duration
            shape.earliestTimeoutIndex = shape.timeouts
        }
        shape.timeouts += 1
    }

    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        k -= 1
        guard k == -1 else { return false }
        result = try handler.closure()
        return true
    }

}

/// A default case (`Case.default`).
public struct DefaultClause<Result>: SelectClause {
    @usableFromInline let handler: _SelectBody<() throws -> Result>

    @inlinable
    init(body: @escaping () throws -> Result) { self.handler = _SelectBody(retaining: body) }

    @inlinable
    public func _release() { handler.release() }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) { shape.defaults += 1 }

    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool {
        result = try handler.closure()
        return true
    }
}
