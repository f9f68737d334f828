/// The machine as a topology reader sees it, before any worker is placed:
/// what libnuma (LibNUMATopology.swift) and sysfs (SysfsTopology.swift)
/// both produce, so that placement has one input whatever the source.
struct MachineTopology: Sendable, Equatable {
    struct Node: Sendable, Equatable {
        /// The kernel's node id.
        var id: Int
        /// Every CPU of the node, allowed to this process or not.
        var cpus: [Int]
        var memoryBytes: Int?
    }

    /// In increasing id order.
    var nodes: [Node]
    /// `distances[i][j]`: SLIT distance from `nodes[i]` to `nodes[j]`.
    var distances: [[Int]]
    /// Why this is simpler than the machine (see `Runtime.Topology.note`).
    var note: String?

    /// One node holding `cpus`: the fallback when no reader can answer.
    static func singleNode(cpus: [Int], note: String?) -> MachineTopology {
        MachineTopology(nodes: [Node(id: 0, cpus: cpus, memoryBytes: nil)], distances: [[10]], note: note)
    }

    /// The machine this process runs on, read once: libnuma's answers do
    /// not change while the process runs (CPU and memory hot-plug aside),
    /// and every runtime of the process places its workers on it.
    static let current = MachineTopology(libnuma: SystemLibNUMA())

    /// Distances for `count` nodes when none are known: 10 local, 20 remote
    /// (what Linux itself assumes without a SLIT).
    static func uniformDistances(_ count: Int) -> [[Int]] {
        (0..<count).map { i in (0..<count).map { j in i == j ? 10 : 20 } }
    }
}
