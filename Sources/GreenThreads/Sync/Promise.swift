// Promise.swift: a value (or an error) produced once and awaited by any
// number of threads: Promise is the writing end, Future the reading end
// (C++'s std::promise/std::shared_future, Tokio's oneshot, Python's
// concurrent.futures.Future).
//
// ## The problem
//
// One thread computes a result that others need, and the waiters may be
// green threads and OS threads alike. A channel of capacity 1 delivers the
// value to one receiver only; a JoinHandle ties the result to the end of a
// thread. Two failure modes need an answer: a second `fulfill` (a logic
// error: the readers may already have the first value), and a producer that
// goes away without ever fulfilling (the readers would wait forever).
//
// ## Protocol
//
// Promise and Future share one `FutureState`: the result, an atomic
// `ready` flag and a WaiterList, under a SpinLock.
//
//  * Completing (`fulfill`, `fail`, or the Promise's deinit) stores the
//    result, sets `ready` and claims every queued waiter in one locked
//    section, and resumes them after it. Only the first completion does
//    anything; `fulfill` and `fail` report a later one as
//    `PromiseError.alreadyFulfilled`.
//  * `get` reads `ready` without the lock (one acquiring load) and returns
//    the stored result if it is set; otherwise it re-checks under the lock
//    and queues, so a completion cannot fall in between (a lost wake-up).
//    A waiter resumed with `.notified` finds the result stored: it was
//    written before the claim.
//  * The result never changes once stored, so every reader copies it out
//    without the lock.
//  * A Promise released without completing completes with
//    `PromiseError.broken` from its deinit: waiters learn that nothing will
//    come instead of hanging. The Future does not keep the Promise alive
//    (both reference only the state), so the last reference to the writing
//    end decides this, wherever it goes.
//
// Rejected: a `fulfill` that traps on a second call. A second completion
// is often a race between a result and a timeout or cancellation path,
// which the caller can reasonably ignore; a typed error lets it decide.
//
// ## Memory ordering
//
// | operation                          | ordering  | pairs with                               |
// |------------------------------------|-----------|------------------------------------------|
// | complete: store result, then ready | releasing | `get`/`isReady`'s acquiring load         |
// | complete → a queued waiter         | (resume)  | the resume's release → acquire           |
//
// So everything the producer wrote before completing is visible to every
// thread that `get` returns the result to.

import Synchronization

/// Why a `Promise` could not be completed, or its `Future` not read.
public enum PromiseError: Error, Sendable, Equatable {
    /// `fulfill` or `fail` on a promise that was already completed.
    case alreadyFulfilled
    /// The promise was released without being fulfilled or failed: no
    /// value will ever come.
    case broken
}

/// The writing end of a one-shot value: fulfil it once, and every
/// `future.get()` returns the value.
///
/// ```swift
/// let promise = Promise<Config>()
/// go { try promise.fulfill(loadConfig()) }
/// let config = try promise.future.get()   // parks until fulfilled
/// ```
///
/// Releasing a promise that was never completed fails its future with
/// `PromiseError.broken`, so no reader waits forever.
public final class Promise<T: Sendable>: Sendable {
    /// The reading end. Any number of threads may `get` it, any number of
    /// times.
    public let future: Future<T>

    /// Creates a promise that is not completed.
    public init() {
        future = Future(state: FutureState())
    }

    deinit {
        // The check spares a completed promise the boxed error and the lock.
        if !future.isReady { _ = future.state.complete(.failure(PromiseError.broken)) }
    }

    /// Completes the promise with `value` and wakes every reader.
    /// Callable from any thread.
    /// - Throws: `PromiseError.alreadyFulfilled` if it was already
    ///   fulfilled or failed (the first result stays).
    public func fulfill(_ value: T) throws(PromiseError) {
        if !future.state.complete(.success(value)) { throw .alreadyFulfilled }
    }

    /// Completes the promise with `error`: every `get` throws it.
    /// Callable from any thread.
    /// - Throws: `PromiseError.alreadyFulfilled` if it was already
    ///   fulfilled or failed (the first result stays).
    public func fail(_ error: any Error) throws(PromiseError) {
        if !future.state.complete(.failure(error)) { throw .alreadyFulfilled }
    }

    /// Whether the promise has been fulfilled or failed.
    public var isCompleted: Bool { future.isReady }
}

/// The reading end of a `Promise`: `get` waits for the value.
public struct Future<T: Sendable>: Sendable {
    let state: FutureState<T>

    /// Returns the promised value, waiting until the promise is completed.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks), by
    /// any number of threads, any number of times.
    /// - Throws: the error the promise was failed with;
    ///   `PromiseError.broken` if the promise was released unfulfilled;
    ///   `CancellationError` if the calling green thread is cancelled while
    ///   waiting.
    public func get() throws -> T {
        try state.get()
    }

    /// Whether the promise is completed, so that `get` returns (or throws)
    /// at once.
    public var isReady: Bool { state.ready.load(ordering: .acquiring) }
}

/// What a Promise and its Future share (see the file header).
final class FutureState<T: Sendable>: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `result` is written once, under `lock`,
    // before the releasing store of `ready`, and only read after an
    // acquiring load saw `ready` (or under `lock`, or after a resume that
    // the completion's claim ordered); `waiters` is guarded by `lock`.

    let ready = Atomic<Bool>(false)
    private let lock = SpinLock()
    @exclusivity(unchecked) private var result: Result<T, any Error>?  // Written once, under lock
    @exclusivity(unchecked) private var waiters = WaiterList()         // Guarded by: lock

    /// Stores `outcome` and wakes every reader, if nothing was stored yet.
    /// Returns whether it did.
    func complete(_ outcome: Result<T, any Error>) -> Bool {
        lock.lock()
        if result != nil {
            lock.unlock()
            return false
        }
        result = outcome
        // releasing: pairs with the lock-free check in `get` and `isReady`.
        ready.store(true, ordering: .releasing)
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
        return true
    }

    func get() throws -> T {
        if ready.load(ordering: .acquiring) { return try result.unsafelyUnwrapped.get() }
        lock.lock()
        // Re-checked under the lock: a completion cannot slip in between
        // this check and the queueing.
        if ready.load(ordering: .relaxed) {
            lock.unlock()
            return try result.unsafelyUnwrapped.get()
        }
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("Future.get"),
                            enqueue: { waiters.append($0) }, unlink: { waiters.remove($0) })
        }
        try cause.throwUnlessNotified()
        // The completion stored the result before it claimed us.
        return try result.unsafelyUnwrapped.get()
    }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
