import CContext

/// The error a wait throws when the deadline of a `withDeadline` scope
/// around it has passed (Go's `context.DeadlineExceeded`).
///
/// Thrown by every interruptible wait inside the scope (channel send and
/// receive, select, join, sleep, the locks, semaphores, conditions,
/// `WaitGroup`, sockets), at once for a wait begun after the deadline. An
/// explicit timeout of a call (a select's timeout case, a socket's
/// `timeout:`) keeps its own meaning when it comes first.
public struct DeadlineExceeded: Error, Sendable, Equatable, CustomStringConvertible {
    public init() {}

    public var description: String {
        "deadline exceeded: the deadline of an enclosing withDeadline scope passed"
    }
}

/// Runs `body` with a deadline `duration` from now: every interruptible
/// wait inside it (on the calling green thread or OS thread) throws
/// `DeadlineExceeded` once the deadline passes, within about a millisecond.
///
/// ```swift
/// let reply = try withDeadline(after: .milliseconds(200)) {
///     try backend.send(request)
///     return try replies.receive()
/// }
/// ```
///
/// Scopes nest, and the earliest deadline rules: an inner scope cannot
/// extend an outer one. A zero or negative `duration` is a deadline that
/// has already passed: the first wait inside throws at once. Work that
/// does not wait is never interrupted, and a wait whose event is already
/// there (a buffered value, a free lock) completes, as it does for a
/// cancelled thread.
///
/// The deadline stays passed until the scope ends: a wait inside it after
/// the error (in a `catch`, a `defer`) throws again at once. The error
/// propagates out of this scope and every scope around it; catch it where
/// you want to recover (Go's `ctx.Err()`, Trio's `fail_after`).
///
/// Green threads spawned with `go` inside the scope are not bound by it,
/// and neither is the body of `GreenThread.blocking`, which runs on
/// another thread. The children of a `withGreenGroup` opened inside it
/// are: each runs under the scope's deadline, so a fan-out ends when its
/// deadline passes (Go's `errgroup` under `context.WithTimeout`).
///
/// - Throws: what `body` throws, `DeadlineExceeded` from a wait included.
public func withDeadline<T>(after duration: Duration, _ body: () throws -> T) throws -> T {
    try withScopeDeadline({ now, scopes in scopes.deadline(after: duration, from: now) }, body)
}

/// `withDeadline(after:_:)` with an absolute deadline on the continuous
/// clock. An instant in the past has already passed: the first wait inside
/// throws `DeadlineExceeded` at once.
public func withDeadline<T>(at instant: ContinuousClock.Instant, _ body: () throws -> T) throws -> T {
    try withScopeDeadline({ now, _ in Park.deadline(after: instant - ContinuousClock.now, from: now) }, body)
}

/// A deadline scope at `deadline`, in the clock of `WaitScopes.deadline`:
/// how a group's child inherits the deadline its group was opened under.
func withDeadline<T>(clockNanoseconds deadline: Int64, _ body: () throws -> T) throws -> T {
    try withScopeDeadline({ _, _ in deadline }, body)
}

/// A deadline scope at `deadline(now, scopes)` (`Park.now()` ns), given
/// the thread's scopes with this one entered. See Deadline.swift.
@inline(__always)
private func withScopeDeadline<T>(_ deadline: (Int64, WaitScopes) -> Int64, _ body: () throws -> T) throws -> T {
    // A green thread: the worker and fiber resolved once, and no reference
    // counted (the worker outlives the call, the fiber runs it, and the
    // fiber keeps its scopes).
    if let raw = gt_current_worker(),
       let fiber = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef({ $0.local.pointee.current }) {
        let worker = Unmanaged<Worker>.fromOpaque(raw)
        let now = worker._withUnsafeGuaranteedRef { $0.clock.now() }
        let scopes = fiber._withUnsafeGuaranteedRef { WaitScopes.enter(fiber: $0) }
        return try scopes._withUnsafeGuaranteedRef { scopes in
            try withGreenScopeDeadline(deadline(now, scopes), now: now, scopes: scopes, worker: worker, body)
        }
    }
    let scopes = WaitScopes.enter()
    let saved = scopes.deadline
    // An OS thread's futex takes the deadline: no timer, no node.
    scopes.deadline = min(saved, deadline(Park.now(), scopes))
    defer {
        scopes.deadline = saved
        scopes.leave()
    }
    return try body()
}

/// `withScopeDeadline` on a green thread: a node with a timer when the
/// deadline is earlier than the ones around it (only then can it fire
/// first), which inserts one only if its lazy entry would fire late
/// (Deadline.swift).
@inline(__always)
private func withGreenScopeDeadline<T>(
    _ deadline: Int64, now: Int64, scopes: WaitScopes, worker: Unmanaged<Worker>, _ body: () throws -> T
) throws -> T {
    let saved = scopes.deadline
    var node: Unmanaged<ScopeNode>?
    if deadline < saved {
        scopes.deadline = deadline
        let n = scopes.takeNode()
        n._withUnsafeGuaranteedRef { $0.begin(in: scopes, deadline: deadline, now: now, worker: worker) }
        node = n
    }
    defer {
        if let node { scopes.endNode(node) }
        scopes.deadline = saved
        scopes.leave()
    }
    return try body()
}

/// A region of code whose waits can be cancelled as a whole, from any
/// thread: Trio's `CancelScope`, Go's `context.WithCancel` for one thread.
///
/// Created by `withCancelScope`. `cancel()` ends the wait the scope's
/// thread is parked in, if it is inside the scope, with `CancellationError`,
/// and every interruptible wait it begins afterwards inside the scope
/// throws `CancellationError` at once. Once the scope has ended, `cancel()`
/// does nothing: it never reaches the code after the scope. The green
/// thread itself is not cancelled (`GreenThread.isCancelled` stays false),
/// and green threads spawned with `go` inside the scope are not affected.
/// A `withGreenGroup` inside the scope is: its wait for its children ends
/// with the scope's cancellation, which cancels the children (and the
/// group throws `CancellationError` once they have ended).
public final class CancelScope: Sendable {
    let node: ScopeNode

    init(node: ScopeNode) {
        self.node = node
    }

    /// Cancels the scope. Idempotent; callable from any thread, at any
    /// time (after the scope ended it only records the request).
    public func cancel() {
        node.trip(.cancel)
    }

    /// Whether `cancel()` was called.
    public var isCancelled: Bool {
        node.isCancelRequested
    }
}

/// Runs `body` in a new `CancelScope`, handed to it so that it can give the
/// scope to whoever may cancel it (another green thread, a callback).
///
/// ```swift
/// try withCancelScope { scope in
///     go { _ = try? client.read(upTo: 1); scope.cancel() }  // the client hung up
///     let answer = try backend.receive()   // throws CancellationError once cancelled
///     ...
/// }
/// ```
///
/// - Throws: what `body` throws; a wait inside a cancelled scope throws
///   `CancellationError`, which propagates out of the scope.
public func withCancelScope<T>(_ body: (CancelScope) throws -> T) throws -> T {
    let scopes = WaitScopes.enter()
    let node = ScopeNode(cancelIn: scopes)
    defer {
        node.leave()
        scopes.leave()
    }
    return try body(CancelScope(node: node))
}

extension GreenThread {
    /// Throws if a wait begun now would be interrupted at once: the green
    /// thread is cancelled or an enclosing cancel scope was cancelled
    /// (`CancellationError`), or an enclosing deadline passed
    /// (`DeadlineExceeded`). A checkpoint for long computations, and for
    /// after `blocking`, whose body no cancellation interrupts.
    public static func checkCancellation() throws {
        if let fiber = currentFiber, fiber.cancelled.load(ordering: .relaxed) { throw CancellationError() }
        guard let scopes = WaitScopes.current else { return }
        if let cause = scopes.interruption { try cause.throwIfInterrupted() }
        if scopes.deadline != .max && scopes.deadline <= Park.now() { throw DeadlineExceeded() }
    }
}
