// GreenAwait.swift: `GreenThread.await`, a green thread calling async code.
//
// ## The problem
//
// Most of the Swift server ecosystem is async. A green thread is synchronous
// code on its own stack: it cannot `await`, and it must not block its worker
// while async code runs, or every green thread queued on that worker stops
// (with one worker, the whole runtime). It must not even wait on a worker
// for a Task that might need that worker.
//
// ## Design
//
// The body runs as an unstructured `Task`. Called on a green thread, the
// Task prefers the runtime's own executor (`Runtime.taskExecutor`,
// TaskExecutor.swift): its first job is queued on the caller's worker,
// which runs it on its scheduling loop as soon as the caller parks, and the
// body's wake of the caller lands in that worker's run-next slot. A call
// so stays on one worker and one core, with no thread of Swift's pool to
// wake. On a plain OS thread the Task runs on the default executor (the
// cooperative pool). The green thread parks in `Park.wait` on a
// `TaskCompletion`: the Task stores its result there and wakes the parked
// thread through the waker it found, the ordinary claim protocol
// (Park.swift). So any number of green threads may wait at once, on any
// number of workers, each costing one Task and one park; the body's
// suspensions (awaiting I/O, a timer) park nothing but the Task.
//
// Rejected: running the body with a semaphore wait on the calling thread
// (blocks the worker: the deadlock above); polling a completion flag with
// `GreenThread.yield` (burns the worker while the Task runs, and scales with
// the number of waiters); the default executor for green callers too (every
// call then wakes a pool thread, and the body's end wakes the worker back:
// two cross-core futex wakes per call).
//
// ## Cancellation, both ways
//
//  * The green thread is cancelled (`JoinHandle.cancel`, shutdown) while it
//    waits: the park ends with `.cancelled`, the thread cancels the Task, and
//    then waits again, without cancellation, for the Task to finish. The
//    body never outlives the call: whatever it returns or throws (typically
//    `CancellationError`) is what `await` returns or throws. A thread that
//    is already cancelled still runs the body, in a Task cancelled at once.
//  * The Task is cancelled from outside: nothing to forward, the body sees
//    it and its error comes back as the green thread's.
//
// ## Protocol (`TaskCompletion`)
//
// One SpinLock guards the result and the waker. The Task, finishing, stores
// the result and takes the waker under the lock, then wakes it after. The
// green thread's register step, under the lock, either finds the result
// (returns false: the wait ends at once as `.notified`) or leaves its waker.
// The lock orders the result before the waiter's read of it; the wake's own
// release/acquire (Park.swift) orders it for a waiter that slept.
//
// While a green thread waits here its runtime's `taskWaits` is raised:
// deadlock detection sees only the runtime's own threads, and a Task is the
// outside world that may wake one at any time, like a socket.
//
// ## Where it may be called
//
//  * A green thread: parks (never blocks its worker).
//  * A plain OS thread: blocks it on a futex (Park's `waitOnThread`).
//  * Inside a Task (an async function, or synchronous code it calls), off
//    the main thread: the thread is one of the cooperative pool's few, and
//    blocking it for a Task that needs the pool can deadlock the process.
//    This traps with a message; `await` the body directly instead. The main
//    thread is allowed to block (it is not a pool thread), at the cost of
//    stalling the main actor.

import CContext
#if canImport(Glibc)
import Glibc
#endif

/// Where a Task started by `GreenThread.await` leaves its result for the
/// green thread (or OS thread) parked on it.
final class TaskCompletion<T: Sendable>: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `result` and `waker` are guarded by
    // `lock`.
    private let lock = SpinLock()
    @exclusivity(unchecked) private var result: Result<T, any Error>?  // Guarded by: lock
    @exclusivity(unchecked) private var waker: Waker?                  // Guarded by: lock

    /// The Task's end: stores the result and wakes the waiter, if parked.
    func complete(_ r: Result<T, any Error>) {
        lock.lock()
        result = r
        let w = waker
        waker = nil
        lock.unlock()
        w?.wake()
    }

    /// Park's register step: false if the Task has finished already.
    func register(_ w: Waker) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if result != nil { return false }
        waker = w
        return true
    }

    /// The result, once `register` returned false or its waker woke.
    var outcome: Result<T, any Error> {
        lock.withLock { result.unsafelyUnwrapped }
    }
}

extension GreenThread {
    /// Runs async code from a green thread: starts `body` as a Task (on the
    /// runtime's `taskExecutor`, so on the workers, between green threads)
    /// and parks the calling green thread, never its worker, until it
    /// finishes. Returns what the body returns, or rethrows what it throws.
    ///
    /// ```swift
    /// let page = try GreenThread.await { try await client.get(url) }
    /// ```
    ///
    /// Cancelling the green thread while it waits cancels the Task, and then
    /// still waits for it to finish, so the body never outlives the call;
    /// the body's reaction (usually `CancellationError`) is the result.
    /// On a plain OS thread the call blocks that thread, and the Task runs
    /// on Swift's default executor. The body is async code: it awaits, and
    /// must not block its thread (on a green thread's call, that thread is
    /// a worker).
    ///
    /// - Precondition: not called from inside a Swift concurrency Task off
    ///   the main thread (it would block a thread of the cooperative pool,
    ///   which the body itself may need: `await` it directly there).
    public static func `await`<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let fiber = currentFiber
        let core = fiber?.core
        if core == nil { checkNotInPoolTask() }
        // Cancelled before the call: the Task cancels itself first thing,
        // so that the body sees it whenever it starts.
        let cancelledAlready = fiber?.cancelled.load(ordering: .relaxed) ?? false
        // Deadlock detection holds off while the Task runs: it may wake us
        // at any time (RuntimeCore.swift).
        core?.taskWaits.add(1, ordering: .releasing)
        defer { core?.taskWaits.subtract(1, ordering: .releasing) }
        let completion = TaskCompletion<T>()
        let operation: @Sendable () async -> Void = {
            if cancelledAlready { withUnsafeCurrentTask { $0?.cancel() } }
            do {
                completion.complete(.success(try await body()))
            } catch {
                completion.complete(.failure(error))
            }
        }
        // On a green thread, the runtime's own workers run the body.
        let task = core.map { Task(executorPreference: $0.taskExecutor, operation: operation) } ?? Task(operation: operation)
        var cause = Park.wait(reason: .other("GreenThread.await"), cancellable: true) { completion.register($0) }
        let interruption = cause
        if cause != .notified {
            task.cancel()
            // Until the body has finished: it must not outlive the call.
            while cause != .notified {
                cause = Park.wait(reason: .other("GreenThread.await"), cancellable: false) { completion.register($0) }
            }
        }
        let outcome = completion.outcome
        // A deadline scope around the call ended it: the Task saw a plain
        // cancellation, the caller is owed the scope's reason.
        if interruption == .deadlineExceeded, case .failure(let error) = outcome, error is CancellationError {
            throw DeadlineExceeded()
        }
        return try outcome.get()
    }

    /// Traps if an OS thread about to block is running a Task off the main
    /// thread (the file header, "Where it may be called").
    private static func checkNotInPoolTask() {
        let inTask = withUnsafeCurrentTask { $0 != nil }
        if inTask && !gt_is_main_thread() {
            fatalError("GreenThreads: GreenThread.await called inside a Swift concurrency task would block a "
                       + "thread of the cooperative pool; await the body directly instead")
        }
    }
}
