// Topology: where the workers sit, and whom each one steals from first.
//
// The problem. On a machine with several NUMA nodes a worker reaches the
// memory of its own node faster than a remote node's, and a remote node's
// at a cost that grows with the distance the firmware reports (the ACPI
// SLIT: 10 for local, typically 16-32 for one hop, more for two). A
// scheduler that steals from any victim at random moves green threads, and
// the caches and stacks they touch, across sockets as readily as across
// cores. So the scheduler needs three facts: which CPUs this process may
// use, which node each CPU belongs to, and how far apart the nodes are.
//
// Where the facts come from. libnuma, opened at run time (CContext's
// numa.c): its node-of-CPU, distance and node-size queries, restricted to
// the CPUs in this thread's affinity mask, so `taskset` and cgroup cpusets
// are honoured. Two designs were rejected:
//
// - sysfs only (/sys/devices/system/node): each node's `cpulist` gives
//   the nodes, but distances need each `distance` file parsed by hand, its
//   columns following the online nodes rather than node ids, and sparse
//   ids and cpusets handled again; libnuma already gets all of that right
//   and is what memory placement calls anyway. The sysfs parser is kept
//   (SysfsTopology.swift) because it reads any directory: tests point it
//   at fixtures copied from real multi-node machines, and compare it with
//   libnuma inside a multi-node guest.
// - Linking libnuma: a missing libnuma.so.1 would stop every program in the
//   dynamic loader, before main. Opened with dlopen, a missing library (or
//   numa_available() < 0: a kernel without NUMA) gives one node and a
//   `note` saying why; nothing fails.
//
// Both readers produce one `MachineTopology` (nodes with their CPUs and
// memory, the distance matrix); `.simulated` builds one from a matrix.
//
// Placement (Topology+Placement.swift). CPUs are ordered node by node, so
// consecutive workers fill one node before the next: workers 0..k-1 take
// node 0's k CPUs. With more workers than CPUs no worker gets a CPU of its
// own, and the workers are spread over the nodes in proportion to their
// CPUs. Workers are pinned by default exactly when there is one worker per
// CPU the process may use: then a pin costs the kernel no freedom it could
// use, and a worker's caches, and the memory first touched from it, stay
// on its node. Replacement workers (SpareWorker.swift) are never pinned:
// they exist to run beside a stuck worker, wherever there is room.
//
// Stealing (Topology+Stealing.swift). Each worker gets its victims in
// groups, nearest first: its own node, then one group per other node in
// increasing SLIT distance from its node (ties by node id). The scheduler
// decides how hard to try each group; this table only orders them.
//
// Two numberings. Public node numbers (`Node.id`, `GreenThread.currentNode`,
// `distance(from:to:)`, `Runtime.placement`) are the kernel's node ids, so
// they mean the same as in `numactl` or `move_pages`. The scheduler indexes
// its per-node arrays (injectors) by a dense index over the nodes that have
// workers (`nodeOfWorker`, `workersOfNode`, `nodeCount`); on a machine whose
// nodes all hold workers the two coincide.

/// The internal name of the runtime's placement table.
typealias Topology = Runtime.Topology

extension Runtime {
    /// The NUMA layout a runtime placed its workers on: the machine's nodes
    /// (or the simulated ones), the CPUs of each that this process may use,
    /// the workers on each, and the distances between them.
    ///
    /// ```swift
    /// let rt = Runtime()
    /// for node in rt.topology.nodes {
    ///     print(node.id, node.cpus, node.workers, rt.topology.distance(from: 0, to: node.id))
    /// }
    /// ```
    ///
    /// With `NUMAMode.auto` it comes from libnuma, loaded at run time. When
    /// libnuma is missing or the kernel has no NUMA support, the runtime
    /// uses one node and ``note`` says why.
    public struct Topology: Sendable {
        /// One NUMA node.
        public struct Node: Sendable, Hashable {
            /// The kernel's node id (as in `numactl --hardware`).
            public let id: Int
            /// The CPUs of this node that the process may run on (its
            /// affinity mask, so `taskset` and cpusets are honoured), in
            /// increasing order. Empty for a memory-only node. In a
            /// simulation, the CPUs its workers were given.
            public let cpus: [Int]
            /// The runtime's workers placed on this node (indices as in
            /// ``GreenThread/currentWorker``). Empty if the node has no CPU
            /// the runtime uses.
            public let workers: [Int]
            /// Memory of the node in bytes, as the kernel reports it; nil
            /// when unknown (and in a simulation).
            public let memoryBytes: Int?
        }

        /// Every node, in increasing id order, including nodes without
        /// usable CPUs (memory-only nodes, or nodes outside the affinity
        /// mask).
        public let nodes: [Node]

        /// Why the topology is simpler than the machine, if it is: libnuma
        /// missing, or the kernel without NUMA support. nil otherwise.
        public let note: String?

        /// SLIT distances between `nodes[i]` and `nodes[j]`.
        let distances: [[Int]]
        /// Scheduling nodes: the dense index of each worker's node among the
        /// nodes that have workers. Spares use their mirror's entry (`w % n`).
        let nodeOfWorker: [Int]
        /// The scheduling node count (nodes with at least one worker).
        let nodeCount: Int
        /// Workers of each scheduling node, in index order.
        let workersOfNode: [[Int]]
        /// The position in `nodes` of each scheduling node.
        let positionOfNode: [Int]
        /// The CPU each configured worker is placed on; nil when there are
        /// more workers than CPUs.
        let cpuOfWorker: [Int?]
        /// Whether workers with a CPU are pinned to it.
        let pinsWorkers: Bool
        /// Whether there is a worker for every CPU this process may run on,
        /// so that the kernel has no CPU to spare for other threads
        /// (Scheduler/Monitor/CPUYield.swift).
        let workersCoverEveryCPU: Bool
        /// Per worker: groups of victims, nearest first (Topology+Stealing.swift).
        let stealGroups: [[[Int]]]
        /// The scheduling node of each allowed CPU whose node has workers.
        let nodeOfCPU: [Int: Int]

        /// The distance between two nodes in ACPI SLIT units: 10 within a
        /// node, more the farther apart they are (Linux reports what the
        /// firmware says; `.simulated(nodes:)` uses 20 between any two).
        ///
        /// - Precondition: both are ids of ``nodes``.
        public func distance(from: Int, to: Int) -> Int {
            distances[position(ofNode: from, argument: "from")][position(ofNode: to, argument: "to")]
        }

        private func position(ofNode id: Int, argument: String) -> Int {
            guard let p = nodes.firstIndex(where: { $0.id == id }) else {
                preconditionFailure("GreenThreads: Topology.distance(\(argument): \(id)): no such node (nodes: \(nodes.map(\.id)))")
            }
            return p
        }

        /// The CPU to pin worker `w` to; nil when workers are not pinned,
        /// for a spare (SpareWorker.swift) and beyond the CPUs.
        func pinnedCPU(ofWorker w: Int) -> Int? { pinsWorkers ? cpu(ofWorker: w) : nil }

        /// The CPU worker `w` is placed on; nil for a spare, which runs
        /// wherever the kernel finds room, and when workers outnumber CPUs.
        func cpu(ofWorker w: Int) -> Int? { w < cpuOfWorker.count ? cpuOfWorker[w] : nil }

        /// The scheduling node of `cpu` (`gt_current_cpu()` of a thread
        /// outside the runtime), for work that should start near its
        /// caller; nil when no worker sits on that CPU's node.
        func node(ofCPU cpu: Int) -> Int? { nodeOfCPU[cpu] }

        /// The kernel's id of worker `w`'s node (a spare: its mirror's).
        func nodeID(ofWorker w: Int) -> Int {
            nodes[positionOfNode[nodeOfWorker[w % nodeOfWorker.count]]].id
        }
    }
}
