// Once.swift: run an initializer exactly once (Go's sync.Once).
//
// Fast path: one acquiring load of `done`. Slow path: the first caller runs
// the body holding a GreenMutex, so concurrent callers park (not spin)
// until it finishes, and all of them see its effects: the releasing store
// of `done` and the mutex both publish them.

import Synchronization

/// Runs a body once, no matter how many threads call `run` (Go's
/// `sync.Once`).
///
/// ```swift
/// let setup = Once()
/// setup.run { loadConfiguration() }   // every caller returns after it finished
/// ```
public final class Once: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `done` is atomic, the rest is a mutex.

    private let done = Atomic<Bool>(false)
    private let mutex = GreenMutex()

    /// Creates a `Once` whose body has not run.
    public init() {}

    /// Runs `body` if no call has completed it yet; otherwise returns at
    /// once. Callers that arrive while it runs wait (uncancellably) for it
    /// to finish.
    ///
    /// If `body` throws, the error propagates to that caller and the `Once`
    /// is *not* done: the next call tries again (Go counts a panicking body
    /// as done; a Swift error is an ordinary, retryable outcome).
    /// - Warning: calling `run` on the same `Once` from inside `body`
    ///   deadlocks, as in Go.
    public func run(_ body: () throws -> Void) rethrows {
        if done.load(ordering: .acquiring) { return }
        try runSlow(body)
    }

    private func runSlow(_ body: () throws -> Void) rethrows {
        mutex.lockUncancellable()
        defer { mutex.unlock() }
        if done.load(ordering: .relaxed) { return }
        try body()
        // releasing: pairs with the fast path's acquiring load.
        done.store(true, ordering: .releasing)
    }

    /// Whether a call to `run` has completed its body.
    public var isDone: Bool { done.load(ordering: .acquiring) }
}
