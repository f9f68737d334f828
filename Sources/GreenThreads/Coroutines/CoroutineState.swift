// The life cycle of a coroutine and the result of one step of it.

/// Where a coroutine is in its life, as Python's `inspect.getgeneratorstate`
/// reports it.
///
///     created ──start()──▶ running ──yield──▶ suspended ──send/throw──▶ running
///                             │                   │
///                             └─return/throw──▶ closed ◀──close()──┘
///
/// A created coroutine that is closed (or thrown into) goes straight to
/// `closed` without running its body.
public enum CoroutineState: UInt8, Sendable, CustomStringConvertible {
    /// Made but not started: no stack yet, the body has not run.
    case created
    /// The body is executing (only observable from inside it, or from code
    /// it calls).
    case running
    /// Parked at a `yield`, waiting for `send`, `throw` or `close`.
    case suspended
    /// Finished: the body returned, threw, or was closed. Its stack is gone.
    case closed

    public var description: String {
        switch self {
        case .created: return "created"
        case .running: return "running"
        case .suspended: return "suspended"
        case .closed: return "closed"
        }
    }
}

/// One step of a coroutine: it either yielded a value and is suspended, or
/// returned and is closed (Python's `StopIteration.value`).
public enum CoroutineStep<Yielded, Returned> {
    /// The body yielded this value and is suspended.
    case yielded(Yielded)
    /// The body returned this value and is closed.
    case returned(Returned)

    /// The yielded value, or nil if the coroutine returned.
    public var yieldedValue: Yielded? {
        if case .yielded(let y) = self { return y }
        return nil
    }

    /// The returned value, or nil if the coroutine yielded.
    public var returnedValue: Returned? {
        if case .returned(let r) = self { return r }
        return nil
    }
}

extension CoroutineStep: Equatable where Yielded: Equatable, Returned: Equatable {}
extension CoroutineStep: Hashable where Yielded: Hashable, Returned: Hashable {}
extension CoroutineStep: Sendable where Yielded: Sendable, Returned: Sendable {}

// `Void` cannot conform to Equatable, yet generators and many coroutines
// return it; comparing their steps is still meaningful.
extension CoroutineStep where Yielded: Equatable, Returned == Void {
    /// Whether both steps yielded equal values, or both returned.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.yielded(let a), .yielded(let b)): return a == b
        case (.returned, .returned): return true
        default: return false
        }
    }

    public static func != (lhs: Self, rhs: Self) -> Bool { !(lhs == rhs) }
}
