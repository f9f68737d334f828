/// The handle to a green thread's result. Copies share the result: every
/// `join` of any copy returns the same value or rethrows the same error.
public struct JoinHandle<T: Sendable>: Sendable {
    @usableFromInline let fiber: TypedFiber<T>

    @usableFromInline
    init(fiber: TypedFiber<T>) {
        self.fiber = fiber
    }

    /// The green thread's identity.
    public var id: GreenThread.ID { GreenThread.ID(rawValue: fiber.id) }

    /// Waits for the green thread to finish and returns its value, or
    /// rethrows its error. Parks a green thread; blocks a plain OS thread.
    ///
    /// Throws `CancellationError` if the *calling* green thread (or a cancel
    /// scope around the call) is cancelled while waiting, `DeadlineExceeded`
    /// if a `withDeadline` scope's deadline passes while waiting, and `RuntimeError.deadlock` on an OS thread
    /// when the runtime can never finish the thread. A thread that never
    /// ran throws `RuntimeError.tooManyGreenThreads` (spawned past
    /// `Runtime.Configuration.maxGreenThreads`) or
    /// `RuntimeError.outOfStackMemory` (no stack could be mapped for it).
    public func join() throws -> T {
        try fiber.join()
    }

    /// Whether the body has returned or thrown.
    public var isFinished: Bool { fiber.done.load(ordering: .acquiring) }

    /// Requests cancellation: sets the flag `GreenThread.isCancelled` reads
    /// and ends the thread's current cancellable wait (`sleep`, `join`).
    /// Cooperative: code that never checks keeps running.
    public func cancel() {
        fiber.core.cancel(fiber)
    }

    /// The result, for Swift concurrency: suspends the task (never a
    /// worker) until the green thread finishes.
    ///
    /// Cancelling the awaiting Task cancels the green thread (as `cancel()`
    /// does) and still waits for it to finish: its reaction to the
    /// cancellation, usually `CancellationError`, is the result.
    public var value: T {
        get async throws {
            let fiber = self.fiber
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    fiber.onCompletion { continuation.resume(with: Result { try fiber.value() }) }
                }
            } onCancel: {
                fiber.core.cancel(fiber)
            }
        }
    }
}

/// Joins every handle, in order, and returns their values. Every thread is
/// waited for; the first error (in handle order) is then rethrown.
@discardableResult
public func joinAll<T>(_ handles: [JoinHandle<T>]) throws -> [T] {
    var values: [T] = []
    values.reserveCapacity(handles.count)
    var firstError: (any Error)?
    for h in handles {
        do {
            values.append(try h.join())
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if firstError == nil { firstError = error }
        }
    }
    if let firstError { throw firstError }
    return values
}
