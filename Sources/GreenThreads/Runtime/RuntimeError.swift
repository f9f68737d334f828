/// Errors the runtime itself raises.
public enum RuntimeError: Error, Sendable, CustomStringConvertible {
    /// Every green thread is parked and nothing can wake any of them.
    case deadlock(DeadlockReport)
    /// The spawn would have exceeded `Runtime.Configuration.maxGreenThreads`
    /// (the limit, carried here) live green threads. The green thread never
    /// ran: its `join` throws this, and the runtime goes on serving the
    /// threads it has.
    case tooManyGreenThreads(limit: Int)
    /// No stack could be mapped for the green thread, so it never ran: its
    /// `join` throws this, and the runtime goes on serving the threads it
    /// has. The text says what the kernel refused and what to change (the
    /// machine's memory, `RLIMIT_AS`, or `vm.max_map_count`).
    case outOfStackMemory(String)

    public var description: String {
        switch self {
        case .deadlock(let report): return report.description
        case .tooManyGreenThreads(let limit):
            return "GreenThreads: spawn refused: \(limit) green threads are live, the limit set by"
                + " Runtime.Configuration.maxGreenThreads"
        case .outOfStackMemory(let explanation): return explanation
        }
    }
}

/// What each parked green thread was waiting for when a deadlock was found.
public struct DeadlockReport: Sendable, CustomStringConvertible {
    /// One parked green thread.
    public struct Entry: Sendable {
        /// Its ID.
        public let thread: GreenThread.ID
        /// What it waits for ("receive from a channel", "select", ...).
        public let waitingFor: String
        /// The name it was spawned with (`go(name:)`), if any.
        public let name: String?

        init(thread: GreenThread.ID, waitingFor: String, name: String? = nil) {
            self.thread = thread
            self.waitingFor = waitingFor
            self.name = name
        }
    }

    /// Every parked green thread, by ID.
    public let blocked: [Entry]

    public var description: String {
        var s = "deadlock: all green threads are asleep (\(blocked.count) parked)"
        for e in blocked {
            let named = e.name.map { " \($0.debugDescription)" } ?? ""
            s += "\n  green thread \(e.thread)\(named) waits on \(e.waitingFor)"
        }
        return s
    }
}
