// SelectGroups.swift: the clauses that group a select's cases (a block, an
// `if`, an `if`/`else` or `switch`, a `for`) and the result builder that
// makes them. Each walks its members in order, counting channel cases down
// with `k` (see SelectClauses.swift), so every case keeps one index across
// all the select's passes.

/// Two consecutive parts of a block of cases: the builder folds a block of
/// any length into nested pairs (`buildPartialBlock`).
public struct SelectPair<First: SelectClause, Second: SelectClause>: SelectClause
where First.Result == Second.Result {
    public typealias Result = First.Result
    @usableFromInline let first: First
    @usableFromInline let second: Second

    @inlinable
    init(_ first: First, _ second: Second) {
        self.first = first
        self.second = second
    }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        first._measure(&shape)
        second._measure(&shape)
    }
    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        if try first._pollOne(&k, &result) { return true }
        return k >= 0 ? try second._pollOne(&k, &result) : false
    }
    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        first._ready(words, &mask, &i)
        second._ready(words, &mask, &i)
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        first._quiet(words, &i, recheck: recheck) && second._quiet(words, &i, recheck: recheck)
    }
    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        let polled = first._pollHeld(&k, slot: slot)
        return k >= 0 ? second._pollHeld(&k, slot: slot) : polled
    }
    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) {
        first._lock(&k, unlock: unlock)
        if k >= 0 { second._lock(&k, unlock: unlock) }
    }
    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {
        first._erase(&erasure)
        second._erase(&erasure)
    }
    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) {
        first._destroyErased(&erasure)
        second._destroyErased(&erasure)
    }
    @inlinable
    public func _release() {
        first._release()
        second._release()
    }
    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        if try first._run(&k, closed: closed, slot: slot, &result) { return true }
        return k >= 0 ? try second._run(&k, closed: closed, slot: slot, &result) : false
    }
    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        if try first._runTimeout(&k, &result) { return true }
        return k >= 0 ? try second._runTimeout(&k, &result) : false
    }
    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool {
        if try first._runDefault(&result) { return true }
        return try second._runDefault(&result)
    }
}

/// An empty block: no case at all.
public struct SelectEmpty<Result>: SelectClause {
    @inlinable init() {}
    @inlinable
    public func _measure(_ shape: inout _SelectShape) {}
}

/// An `if` without `else`: its cases take part only when the condition held.
public struct SelectOptional<Clause: SelectClause>: SelectClause {
    public typealias Result = Clause.Result
    @usableFromInline let clause: Clause?

    @inlinable
    init(_ clause: Clause?) { self.clause = clause }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) { clause?._measure(&shape) }
    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        try clause?._pollOne(&k, &result) ?? false
    }
    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        clause?._ready(words, &mask, &i)
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        clause?._quiet(words, &i, recheck: recheck) ?? true
    }
    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        clause?._pollHeld(&k, slot: slot) ?? _SelectPolled(.wouldBlock)
    }
    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) { clause?._lock(&k, unlock: unlock) }
    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) { clause?._erase(&erasure) }
    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) { clause?._destroyErased(&erasure) }
    @inlinable
    public func _release() { clause?._release() }
    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        try clause?._run(&k, closed: closed, slot: slot, &result) ?? false
    }
    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        try clause?._runTimeout(&k, &result) ?? false
    }
    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool {
        try clause?._runDefault(&result) ?? false
    }
}

/// One branch of an `if`/`else` or a `switch`.
public enum SelectEither<First: SelectClause, Second: SelectClause>: SelectClause
where First.Result == Second.Result {
    public typealias Result = First.Result
    case first(First)
    case second(Second)

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        switch self {
        case .first(let c): c._measure(&shape)
        case .second(let c): c._measure(&shape)
        }
    }
    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        switch self {
        case .first(let c): return try c._pollOne(&k, &result)
        case .second(let c): return try c._pollOne(&k, &result)
        }
    }
    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        switch self {
        case .first(let c): c._ready(words, &mask, &i)
        case .second(let c): c._ready(words, &mask, &i)
        }
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        switch self {
        case .first(let c): return c._quiet(words, &i, recheck: recheck)
        case .second(let c): return c._quiet(words, &i, recheck: recheck)
        }
    }
    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        switch self {
        case .first(let c): return c._pollHeld(&k, slot: slot)
        case .second(let c): return c._pollHeld(&k, slot: slot)
        }
    }
    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) {
        switch self {
        case .first(let c): c._lock(&k, unlock: unlock)
        case .second(let c): c._lock(&k, unlock: unlock)
        }
    }
    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {
        switch self {
        case .first(let c): c._erase(&erasure)
        case .second(let c): c._erase(&erasure)
        }
    }
    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) {
        switch self {
        case .first(let c): c._destroyErased(&erasure)
        case .second(let c): c._destroyErased(&erasure)
        }
    }
    @inlinable
    public func _release() {
        switch self {
        case .first(let c): c._release()
        case .second(let c): c._release()
        }
    }
    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        switch self {
        case .first(let c): return try c._run(&k, closed: closed, slot: slot, &result)
        case .second(let c): return try c._run(&k, closed: closed, slot: slot, &result)
        }
    }
    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        switch self {
        case .first(let c): return try c._runTimeout(&k, &result)
        case .second(let c): return try c._runTimeout(&k, &result)
        }
    }
    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool {
        switch self {
        case .first(let c): return try c._runDefault(&result)
        case .second(let c): return try c._runDefault(&result)
        }
    }
}

/// The cases of a `for` loop, one group per iteration.
public struct SelectArray<Clause: SelectClause>: SelectClause {
    public typealias Result = Clause.Result
    @usableFromInline let clauses: [Clause]

    @inlinable
    init(_ clauses: [Clause]) { self.clauses = clauses }

    @inlinable
    public func _measure(_ shape: inout _SelectShape) {
        for c in clauses { c._measure(&shape) }
    }
    @inlinable
    public func _pollOne(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        for c in clauses where k >= 0 {
            if try c._pollOne(&k, &result) { return true }
        }
        return false
    }
    @inlinable
    public func _ready(_ words: UnsafeMutablePointer<UInt>, _ mask: inout UInt, _ i: inout Int) {
        for c in clauses { c._ready(words, &mask, &i) }
    }
    @inlinable
    public func _quiet(_ words: UnsafeMutablePointer<UInt>, _ i: inout Int, recheck: Bool) -> Bool {
        for c in clauses {
            if !c._quiet(words, &i, recheck: recheck) { return false }
        }
        return true
    }
    @inlinable
    public func _pollHeld(_ k: inout Int, slot: UnsafeMutableRawPointer) -> _SelectPolled {
        for c in clauses where k >= 0 {
            let polled = c._pollHeld(&k, slot: slot)
            if k < 0 { return polled }
        }
        return _SelectPolled(.wouldBlock)
    }
    @inlinable
    public func _lock(_ k: inout Int, unlock: Bool) {
        for c in clauses where k >= 0 { c._lock(&k, unlock: unlock) }
    }
    @inlinable
    public func _erase(_ erasure: inout _SelectErasure) {
        for c in clauses { c._erase(&erasure) }
    }
    @inlinable
    public func _destroyErased(_ erasure: inout _SelectErasure) {
        for c in clauses { c._destroyErased(&erasure) }
    }
    @inlinable
    public func _release() {
        for c in clauses { c._release() }
    }
    @inlinable
    public func _run(_ k: inout Int, closed: Bool, slot: UnsafeMutableRawPointer, _ result: inout Result?) throws -> Bool {
        for c in clauses where k >= 0 {
            if try c._run(&k, closed: closed, slot: slot, &result) { return true }
        }
        return false
    }
    @inlinable
    public func _runTimeout(_ k: inout Int, _ result: inout Result?) throws -> Bool {
        for c in clauses where k >= 0 {
            if try c._runTimeout(&k, &result) { return true }
        }
        return false
    }
    @inlinable
    public func _runDefault(_ result: inout Result?) throws -> Bool {
        for c in clauses {
            if try c._runDefault(&result) { return true }
        }
        return false
    }
}

/// Collects a select's cases; supports `if`, `if`/`else`, `switch` and
/// `for`. A plain list of cases builds one value on the stack (see the
/// file header); only a `for` allocates, for its array.
@resultBuilder
public enum SelectBuilder<Result> {
    @inlinable
    public static func buildExpression<C: SelectClause>(_ clause: C) -> C where C.Result == Result { clause }

    @inlinable
    public static func buildBlock() -> SelectEmpty<Result> { SelectEmpty() }

    @inlinable
    public static func buildPartialBlock<C: SelectClause>(first clause: C) -> C where C.Result == Result { clause }

    @inlinable
    public static func buildPartialBlock<A: SelectClause, N: SelectClause>(accumulated: A, next: N) -> SelectPair<A, N>
    where A.Result == Result, N.Result == Result {
        SelectPair(accumulated, next)
    }

    @inlinable
    public static func buildOptional<C: SelectClause>(_ clause: C?) -> SelectOptional<C> where C.Result == Result {
        SelectOptional(clause)
    }

    @inlinable
    public static func buildEither<F: SelectClause, S: SelectClause>(first clause: F) -> SelectEither<F, S>
    where F.Result == Result, S.Result == Result {
        .first(clause)
    }

    @inlinable
    public static func buildEither<F: SelectClause, S: SelectClause>(second clause: S) -> SelectEither<F, S>
    where F.Result == Result, S.Result == Result {
        .second(clause)
    }

    @inlinable
    public static func buildArray<C: SelectClause>(_ clauses: [C]) -> SelectArray<C> where C.Result == Result {
        SelectArray(clauses)
    }
}
