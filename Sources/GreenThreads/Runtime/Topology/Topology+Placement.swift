import CContext

/// Placement: which node and CPU each worker gets, and whether it is pinned
/// (the rules are in Topology.swift's header).
extension Runtime.Topology {
    /// The runtime's placement on this machine, for this thread's affinity
    /// mask. `pin` is `Configuration.pinWorkers` (nil: pin when there is one
    /// worker per CPU).
    init(workers: Int, mode: Runtime.NUMAMode, pin: Bool? = nil) {
        let cpus = Self.availableCPUs()
        switch mode.kind {
        case .auto:
            self.init(workers: workers, machine: .current, allowedCPUs: cpus, pin: pin)
        case .disabled:
            self.init(workers: workers, machine: .singleNode(cpus: cpus, note: nil), allowedCPUs: cpus, pin: pin)
        case .simulatedNodes(let nodes):
            self.init(workers: workers, machine: Self.simulated(MachineTopology.uniformDistances(nodes)),
                      allowedCPUs: cpus, pin: pin, splitWorkers: true)
        case .simulatedDistances(let distances):
            self.init(workers: workers, machine: Self.simulated(distances), allowedCPUs: cpus, pin: pin,
                      splitWorkers: true)
        }
    }

    /// A simulated machine: nodes without CPUs, which are handed out with
    /// the workers (`splitWorkers`).
    private static func simulated(_ distances: [[Int]]) -> MachineTopology {
        MachineTopology(nodes: distances.indices.map { .init(id: $0, cpus: [], memoryBytes: nil) },
                        distances: distances, note: nil)
    }

    /// Places `workers` on `machine`, restricted to `allowedCPUs`.
    ///
    /// Normally workers follow CPUs: CPUs in node order, worker i on the
    /// i-th, so consecutive workers fill a node before the next. With
    /// `splitWorkers` (a simulation, whose nodes have no real CPUs) the
    /// workers are cut into equal consecutive groups, one per node, and
    /// each node lists the CPUs its workers got.
    init(workers: Int, machine: MachineTopology, allowedCPUs: [Int], pin: Bool?, splitWorkers: Bool = false) {
        let allowed = allowedCPUs.sorted()
        let nodeCountOfMachine = machine.nodes.count
        var positionOfWorker = [Int](repeating: 0, count: workers)
        var cpuOf = [Int?](repeating: nil, count: workers)
        var cpusAt = [[Int]](repeating: [], count: nodeCountOfMachine)
        if splitWorkers {
            let used = max(1, min(nodeCountOfMachine, workers))
            for w in 0..<workers {
                positionOfWorker[w] = w * used / workers
                if workers <= allowed.count {
                    cpuOf[w] = allowed[w]
                    cpusAt[positionOfWorker[w]].append(allowed[w])
                }
            }
        } else {
            // A CPU the machine does not list (a reader that fell back to
            // one node) goes to the first node that has CPUs.
            let fallback = machine.nodes.firstIndex { !$0.cpus.isEmpty } ?? 0
            var positionOfCPU: [Int: Int] = [:]
            for (p, node) in machine.nodes.enumerated() {
                for cpu in node.cpus { positionOfCPU[cpu] = p }
            }
            for cpu in allowed { cpusAt[positionOfCPU[cpu] ?? fallback].append(cpu) }
            let order = cpusAt.flatMap { $0 }
            let position = { (cpu: Int) in positionOfCPU[cpu] ?? fallback }
            for w in 0..<workers where !order.isEmpty {
                if workers <= order.count {
                    cpuOf[w] = order[w]
                    positionOfWorker[w] = position(order[w])
                } else {
                    // Oversubscribed: no worker owns a CPU; spread the
                    // workers over the nodes in proportion to their CPUs.
                    positionOfWorker[w] = position(order[w * order.count / workers])
                }
            }
        }
        var workersAt = [[Int]](repeating: [], count: nodeCountOfMachine)
        for (w, p) in positionOfWorker.enumerated() { workersAt[p].append(w) }
        let positions = workersAt.indices.filter { !workersAt[$0].isEmpty }
        var scheduling = [Int](repeating: 0, count: nodeCountOfMachine)
        for (k, p) in positions.enumerated() { scheduling[p] = k }

        nodes = machine.nodes.enumerated().map { p, node in
            Node(id: node.id, cpus: cpusAt[p].sorted(), workers: workersAt[p], memoryBytes: node.memoryBytes)
        }
        note = machine.note
        distances = machine.distances
        positionOfNode = positions
        nodeCount = positions.count
        nodeOfWorker = positionOfWorker.map { scheduling[$0] }
        workersOfNode = positions.map { workersAt[$0] }
        cpuOfWorker = cpuOf
        pinsWorkers = pin ?? (workers == allowed.count)
        workersCoverEveryCPU = workers >= allowed.count
        var nodeOfCPU: [Int: Int] = [:]
        for p in positions {
            for cpu in cpusAt[p] { nodeOfCPU[cpu] = scheduling[p] }
        }
        self.nodeOfCPU = nodeOfCPU
        stealGroups = Self.stealGroups(nodeOfWorker: nodeOfWorker, workersOfNode: workersOfNode,
                                       positionOfNode: positions, machine: machine)
    }

    /// The CPUs this process may run on, in increasing order: the calling
    /// thread's affinity mask (which the workers it starts inherit), or,
    /// on a pinned worker, the mask it had before it was pinned.
    static func availableCPUs() -> [Int] {
        var buffer = [Int32](repeating: 0, count: 4096)
        let n = gt_available_cpus(&buffer, Int32(buffer.count))
        return buffer.prefix(Int(n)).map(Int.init)
    }
}
