/// A snapshot of a runtime's counters. Values are summed from per-worker
/// counters without stopping the workers, so fields are each exact but not
/// taken at one instant.
public struct RuntimeStats: Sendable, Equatable, CustomStringConvertible {
    /// Green threads started.
    public var spawned = 0
    /// Green threads whose body returned or threw.
    public var completed = 0
    /// Green threads alive now (started, not yet finished).
    public var live = 0
    /// Times a worker out of work took work from another worker's queue
    /// (`localSteals + remoteSteals`).
    public var steals = 0
    /// Steals from a worker of the thief's own NUMA node: a green thread
    /// to run and up to half of the rest of the victim's queue each.
    public var localSteals = 0
    /// Steals from a worker of another NUMA node: one green thread each,
    /// taken only once the thief's own node had no queued work left. 0
    /// with one node.
    public var remoteSteals = 0
    /// The steals made by the workers of each NUMA node the runtime has
    /// workers on, one entry per node, in the order of the nodes' ids.
    public var stealsByNode: [NodeSteals] = []
    /// Times a worker went to sleep for lack of work.
    public var parks = 0
    /// Switches away from a green thread (yields, parks, exits).
    public var switches = 0
    /// Stacks currently mapped (running, parked or pooled). Compacted
    /// stacks stay mapped (their pages are released, not their addresses).
    public var stacksMapped = 0
    /// Sleeping green threads whose stack is compacted right now (see
    /// `Runtime.StackCompaction`).
    public var stacksCompacted = 0
    /// Stack compactions so far (each one copied back when it woke).
    public var stackCompactions = 0
    /// Worker threads.
    public var workers = 0
    /// NUMA nodes the workers are grouped into.
    public var numaNodes = 0
    /// Why the runtime sees one node where the machine may have more
    /// (libnuma missing, a kernel without NUMA): `Runtime.Topology.note`.
    /// Nil when the topology was read as the machine reports it.
    public var numaNote: String?
    /// Times sysmon started a replacement worker because a worker was stuck
    /// in one green thread while others waited (Go's syscall hand-off).
    public var handoffs = 0
    /// Replacement workers running now (back to 0 once stuck workers return).
    public var replacementWorkers = 0
    /// Times sysmon asked a long-running green thread to yield at its next
    /// `GreenThread.checkpoint()`.
    public var preemptionRequests = 0

    public init() {}

    /// The steals made by the workers of one NUMA node, by where the victim
    /// was.
    public struct NodeSteals: Sendable, Equatable {
        /// The thieves' node, as `Runtime.placement` names it.
        public var node: Int
        /// Steals from a worker of this same node.
        public var localSteals = 0
        /// Steals from a worker of another node.
        public var remoteSteals = 0
        /// `localSteals + remoteSteals`.
        public var steals: Int { localSteals + remoteSteals }

        public init(node: Int, localSteals: Int = 0, remoteSteals: Int = 0) {
            self.node = node
            self.localSteals = localSteals
            self.remoteSteals = remoteSteals
        }
    }

    public var description: String {
        "spawned \(spawned), completed \(completed), live \(live), steals \(steals) (local \(localSteals), remote \(remoteSteals)), parks \(parks), "
            + "switches \(switches), stacks \(stacksMapped), compacted \(stacksCompacted) of \(stackCompactions), workers \(workers), nodes \(numaNodes)\(numaNote.map { " (\($0))" } ?? ""), "
            + "handoffs \(handoffs), replacements \(replacementWorkers), preemption requests \(preemptionRequests)"
    }
}
