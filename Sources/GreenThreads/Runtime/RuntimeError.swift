/// Errors the runtime itself raises.
public enum RuntimeError: Error, Sendable, CustomStringConvertible {
    /// Every green thread is parked and nothing can wake any of them.
    case deadlock(DeadlockReport)

    public var description: String {
        switch self {
        case .deadlock(let report): return report.description
        }
    }
}

/// What each parked green thread was waiting for when a deadlock was found.
public struct DeadlockReport: Sendable, CustomStringConvertible {
    public struct Entry: Sendable {
        public let thread: GreenThread.ID
        public let waitingFor: String
    }

    public let blocked: [Entry]

    public var description: String {
        var s = "deadlock: all green threads are asleep (\(blocked.count) parked)"
        for e in blocked { s += "\n  green thread \(e.thread) waits on \(e.waitingFor)" }
        return s
    }
}
