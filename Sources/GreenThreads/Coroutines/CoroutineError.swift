// Errors of the coroutine protocol.

/// Misuse of a coroutine, generator or yield handle: Python's `TypeError`,
/// `ValueError`, `RuntimeError` and `StopIteration` in the same places.
public enum CoroutineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `send(_:)` before `start()`: there is no pending yield to receive the
    /// value. (Python: "can't send non-None value to a just-started generator".)
    case notStarted
    /// `start()` on a coroutine that already started.
    case alreadyStarted
    /// `start()` or `send(_:)` after the coroutine finished or was closed.
    /// (Python: `StopIteration`.)
    case closed
    /// The coroutine was resumed from its own body, or from code its body
    /// called. (Python: "generator already executing".)
    case alreadyRunning
    /// The body caught `CoroutineExit` and yielded again. The yield throws
    /// this instead of suspending, so the body still unwinds; `close()`
    /// reports it. (Python: "generator ignored GeneratorExit".)
    case yieldAfterClose
    /// A yield handle was called outside the body it was given to (it
    /// escaped, or a nested coroutine's body used its parent's handle).
    case yieldOutsideBody

    public var description: String {
        switch self {
        case .notStarted:
            return "CoroutineError.notStarted: send(_:) on a coroutine that has not started; call start() first"
        case .alreadyStarted:
            return "CoroutineError.alreadyStarted: start() on a coroutine that already started; use send(_:)"
        case .closed:
            return "CoroutineError.closed: the coroutine has finished or was closed"
        case .alreadyRunning:
            return "CoroutineError.alreadyRunning: a coroutine cannot be resumed from its own body"
        case .yieldAfterClose:
            return "CoroutineError.yieldAfterClose: the body yielded after close() instead of finishing"
        case .yieldOutsideBody:
            return "CoroutineError.yieldOutsideBody: a yield handle was used outside its coroutine's body"
        }
    }
}

/// Thrown at a coroutine's pending yield by `close()`, and when an
/// unfinished generator or coroutine is abandoned, so that its body unwinds
/// and its `defer`s run. (Python's `GeneratorExit`.)
///
/// Let it propagate: a body that catches it must finish without yielding
/// again, or the yield throws `CoroutineError.yieldAfterClose`.
public struct CoroutineExit: Error, Sendable, Equatable, CustomStringConvertible {
    /// Makes the error, to rethrow or to pass to `throw(_:)`.
    public init() {}
    public var description: String { "CoroutineExit" }
}
