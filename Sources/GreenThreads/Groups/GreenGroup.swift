// GreenGroup.swift: structured fan-out. `withGreenGroup` runs a body that
// starts green threads in a group, and returns only once every one of them
// has ended: Go's errgroup with SetLimit, Trio's nursery, Tokio's JoinSet,
// Python's TaskGroup.
//
// ## The problem
//
// A handler that fans out to eight backends has to wait for all of them,
// stop the rest when one fails, report that failure and not some
// cancellation it caused, run at most N at once, and, when the handler
// itself is cancelled (its client went away), stop the backends too: even
// while it is busy in its own code rather than parked in a wait. With bare
// `go { }` and handles each caller writes this again, and usually leaks the
// children of an error path.
//
// ## Rejected designs
//
// * Unstructured handles (a `[JoinHandle]` and `joinAll`): a body that
//   throws before joining leaks its children; nothing cancels the siblings
//   of the first error; cancelling the parent does not reach the children
//   (a handle's cancel is the parent's own thread only). Every one of those
//   needs the group to outlive the children, which a scope guarantees.
// * Propagating cancellation by polling: each child checking its parent's
//   flag, or the parent cancelling its children when its own wait ends.
//   The first costs every wait a walk up a chain; the second misses a
//   parent that is running, not waiting. Instead `RuntimeCore.cancel`
//   walks down, once, from the thread cancelled (OpenGroups.swift).
// * A semaphore for the limit, taken inside each child. The children would
//   all be spawned at once (10^4 stacks for 10^4 items); errgroup's Go
//   parks the *caller* instead, so at most `limit` threads exist.
// * Spawned-but-cancelled children after the first error (Trio starts
//   them, then cancels them): a loop of 10^4 `go` calls after a failure
//   would start 10^4 threads only to cancel them. Here `go` on a cancelled
//   group throws `CancellationError` and starts nothing.
//
// ## Protocol
//
// All group state is in `GroupScope` (GroupScope.swift), under its one
// spin lock; `GreenGroup<T>` adds the result slots under the same lock.
//
//  1. Open: the calling green thread pushes the scope on its stack of open
//     groups (`Fiber.openGroup`), so that a cancel of that thread reaches
//     it. A plain OS thread cannot be cancelled and pushes nothing.
//  2. `go`: `reserve` waits (parked, cancellably) while `limit` children
//     run, throws if the group is cancelled, counts the child as running
//     and gives it a result slot, all under the lock. The thread is then
//     spawned (on the caller's worker when the caller is one of the
//     runtime's green threads), its completion callback set, and `adopt`
//     records it for cancellation, cancelling it at once if the group was
//     cancelled since `reserve`.
//  3. A child's end (its `TypedFiber` completion callback, so a thread
//     that never ran, past `maxGreenThreads` or without a stack, ends the
//     same way): under the lock, `running -= 1`, its value into its slot
//     and its index onto the completion queue, or, for an error, the first
//     error kept and the group cancelled; every waiter woken. The cancels
//     and the resumes happen after the unlock.
//  4. Body end: an error thrown by the body counts as one more error
//     (`fail`: kept only if no child's came first) and cancels the group.
//  5. Close: wait, uncancellably, until `running == 0` (a cancel of the
//     owner meanwhile reaches the children through step 1, but cannot end
//     this wait: no child may outlive its group), then wait each child's
//     last instructions out (it reported from inside its body's epilogue:
//     see `GroupScope.waitFinished`), pop the scope, and return the
//     results or throw the first error.
//
// A child may itself call `go` on the group while it runs: it keeps
// `running` above zero, so the group cannot close under it. (A child that
// waits for a free slot holds one itself: `limit` such children deadlock,
// as in errgroup.)
//
// ## Orderings
//
// Everything but the cancel flag is under the group's lock. The one race
// between a group being opened and its owner being cancelled is argued in
// OpenGroups.swift. A child cancelled through the group sees it the way any
// cancel is seen (RuntimeCore.swift, "Cancellation": a seq_cst flag, then
// the Dekker pair with the park). `GroupScope.waitFinished` reads a
// child's run state with acquire, pairing with the retiring worker's
// release of `finished`, which follows its `completed` count: once the
// group returns, `stats` no longer counts its children as live.
//
// ## Results
//
// `withGreenGroup` returns the values of the children in the order they
// were started, except those already taken by `next()`, which hands them
// out in the order the children ended (asyncio's `as_completed`, Tokio's
// `join_next`): each value is returned once, by one or the other. A group
// keeps one slot per child started until it returns (an optional `T`, and
// an index while the value is untaken), so it fits a fan-out, not an
// endless accept loop.

/// A set of green threads started by `withGreenGroup`, which waits for all
/// of them. See ``withGreenGroup(limit:_:)``.
///
/// A group may be used from the body and from its children (it is
/// `Sendable`), not after `withGreenGroup` returned.
public final class GreenGroup<T: Sendable>: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `slots` is guarded by `scope.lock`; the
    // scope guards itself.

    let scope: GroupScope
    /// One per child started, in start order; nil until it returns, and
    /// again once `next()` took its value (or if it threw).
    @exclusivity(unchecked) private var slots: [T?] = []  // Guarded by: scope.lock

    init(core: RuntimeCore, limit: Int) {
        scope = GroupScope(core: core, limit: limit)
    }

    /// Starts `body` in a new green thread of the group, once fewer than
    /// the group's `limit` children are running: until then the caller
    /// parks (blocks, on a plain OS thread), like errgroup's `Go`.
    ///
    /// The value `body` returns is part of the group's result, at the
    /// place of this call among the others. An error it throws is the
    /// group's if it is the first, and cancels the group.
    ///
    /// - Parameters:
    ///   - name: shown by ``GreenThread/name``, ``Runtime/dump()`` and
    ///     deadlock reports. nil: no name.
    ///   - file: the spawn site's file, for ``Runtime/dump()``; leave the
    ///     default.
    ///   - line: the spawn site's line; leave the default.
    ///   - body: what the green thread runs.
    /// - Throws: `CancellationError`, starting nothing, if the group is
    ///   cancelled (an error ended a child or the body, or the green thread
    ///   that opened the group was cancelled), or if the calling green
    ///   thread is cancelled while it waits for a free slot.
    public func go(
        name: String? = nil, file: StaticString = #fileID, line: UInt = #line,
        _ body: @escaping @Sendable () throws -> T
    ) throws {
        let index = try scope.reserve {
            slots.append(nil)
            return slots.count - 1
        }
        let core = scope.core
        // A child runs under the deadline of the scopes the group was
        // opened in (Trio's nursery inside `fail_after`, a child of Go's
        // `context.WithTimeout`): its own waits throw `DeadlineExceeded`
        // then, busy owner or not.
        let inherited = WaitScopes.current?.deadline ?? .max
        let run: @Sendable () throws -> T
        if inherited == .max {
            run = body
        } else {
            run = { try withDeadline(clockNanoseconds: inherited, body) }
        }
        let child: TypedFiber<T>
        if let worker = Worker.calling(of: core) {
            child = Worker.spawnFiber(on: worker, name: name, file: file, line: line, run)
        } else {
            child = TypedFiber(core: core, name: name, file: file, line: line, body: run)
            core.submitExternal(child)
        }
        scope.adopt(child)
        // Unowned: the callback runs inside the child's own end, or at once
        // here, both while the child is alive. (It also marks the child's
        // error as handled: the group reports it, not the runtime.)
        child.onCompletion { [self, unowned(unsafe) child] in
            childEnded(index, child)
        }
    }

    /// The value of the next child to return, in the order children end;
    /// nil once no child is running and every returned value was taken.
    /// A value taken here is not in the array `withGreenGroup` returns.
    ///
    /// Parks (blocks, on a plain OS thread) while children run and none
    /// has returned since the last call.
    ///
    /// ```swift
    /// let rest = try withGreenGroup(limit: 8) { (group: GreenGroup<Page>) in
    ///     for url in urls { try group.go { try fetch(url) } }
    ///     while let page = try group.next() { show(page) }   // as they come
    /// }
    /// // rest is empty: next() took every page
    /// ```
    ///
    /// - Throws: the group's first error, once a child or the body failed;
    ///   `CancellationError` if the calling green thread is cancelled while
    ///   it waits.
    public func next() throws -> T? {
        try scope.next { index in
            let value = slots[index]
            slots[index] = nil
            return value.unsafelyUnwrapped
        }
    }

    private func childEnded(_ index: Int, _ child: TypedFiber<T>) {
        var value: T?
        var error: (any Error)?
        do { value = try child.value() } catch let e { error = e }
        scope.childEnded(index: index, error: error) { slots[index] = value }
    }

    /// Runs a whole group: steps 1, 4 and 5 of the file header.
    static func run(
        core: RuntimeCore, owner: Fiber?, limit: Int, _ body: (GreenGroup<T>) throws -> Void
    ) throws -> [T] {
        precondition(limit >= 1,
                     "GreenThreads: withGreenGroup(limit: \(limit)): the limit is how many children may run at once; it must be at least 1")
        let group = GreenGroup(core: core, limit: limit)
        owner?.openGroup(group.scope)
        do {
            try body(group)
        } catch {
            group.scope.fail(error)
        }
        let outcome: Result<[T], any Error> = group.scope.close { firstError in
            if let firstError { return .failure(firstError) }
            let values = group.slots.compactMap { $0 }
            group.slots = []
            return .success(values)
        }
        owner?.closeGroup(group.scope)
        return try outcome.get()
    }
}

/// Runs `body` with a new group of green threads, waits for every thread
/// started in it, and returns their values in the order they were started.
///
/// ```swift
/// let pages = try withGreenGroup(limit: 8) { (group: GreenGroup<Page>) in
///     for url in urls { try group.go { try fetch(url) } }
/// }
/// ```
///
/// - The first error, from a child or from `body`, cancels the other
///   children (their waits throw `CancellationError`; `go` starts no more)
///   and is rethrown once every child has ended; later errors, such as the
///   cancellations it caused, are dropped.
/// - At most `limit` children run at once: `go` waits for a free slot.
/// - Cancelling the green thread that called `withGreenGroup` cancels every
///   child of the group at once, whatever that thread is doing, and their
///   own groups' children in turn.
/// - It never returns before every child has ended, even when `body`
///   throws or the caller is cancelled: nothing started in the group
///   outlives it.
///
/// Values taken with ``GreenGroup/next()`` are not returned again.
///
/// Must be called from a green thread, whose runtime runs the children;
/// from a plain OS thread use ``Runtime/withGreenGroup(limit:_:)``.
///
/// - Parameters:
///   - limit: how many children may run at once, at least 1.
///   - body: starts the children with ``GreenGroup/go(name:file:line:_:)``.
/// - Precondition: `limit >= 1`.
public func withGreenGroup<T: Sendable>(
    limit: Int = .max, _ body: (GreenGroup<T>) throws -> Void
) throws -> [T] {
    guard let owner = GreenThread.currentFiber else {
        preconditionFailure(
            "GreenThreads: withGreenGroup called outside a green thread; from a plain OS thread use runtime.withGreenGroup")
    }
    return try GreenGroup.run(core: owner.core, owner: owner, limit: limit, body)
}

extension Runtime {
    /// ``GreenThreads/withGreenGroup(limit:_:)`` with its children on this
    /// runtime, callable from any thread: a plain OS thread blocks until
    /// every child has ended. Called from a green thread, cancelling that
    /// thread cancels the children as with the free function.
    ///
    /// - Precondition: `limit >= 1`.
    public func withGreenGroup<T: Sendable>(
        limit: Int = .max, _ body: (GreenGroup<T>) throws -> Void
    ) throws -> [T] {
        try GreenGroup.run(core: core, owner: GreenThread.currentFiber, limit: limit, body)
    }
}
