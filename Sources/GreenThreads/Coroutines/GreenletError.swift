// Errors of greenlet switching.

/// Misuse of a `Greenlet`.
public enum GreenletError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The greenlet was switched to from a thread other than the one that
    /// created it. Greenlets of one thread form one call tree on that
    /// thread's stacks; inside a runtime, "thread" means the green thread
    /// and the OS worker it was on when it created the greenlet.
    case wrongThread
    /// A greenlet made by another green thread is running on this worker
    /// (that green thread parked inside it), so this green thread cannot
    /// start switching greenlets here until it returns to its root.
    case busy

    public var description: String {
        switch self {
        case .wrongThread:
            return "GreenletError.wrongThread: a greenlet can only be switched to on the thread that created it"
        case .busy:
            return "GreenletError.busy: another green thread's greenlet is running on this worker thread"
        }
    }
}

/// Thrown into a greenlet to end it: by `throw()` with no argument, and
/// when a suspended greenlet is abandoned (its last reference dropped), so
/// that its body unwinds and its `defer`s run. A body that lets it escape
/// finishes normally, and its parent receives the `GreenletExit` as the
/// value. (greenlet's `GreenletExit`.)
public struct GreenletExit: Error, Sendable, Equatable, CustomStringConvertible {
    /// Makes the error, to rethrow or to pass to `throw(_:)`.
    public init() {}
    public var description: String { "GreenletExit" }
}
