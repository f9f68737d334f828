/// The steal order: what the scheduler asks of the topology when a worker
/// runs out of work (Topology.swift's header says why by distance).
extension Runtime.Topology {
    /// Groups of victim workers for worker `w`, nearest first: group 0 is
    /// its own node (`w` included), then one group per other node with
    /// workers, in increasing distance from `w`'s node, ties by node id.
    func stealOrder(fromWorker w: Int) -> [[Int]] { stealGroups[w] }

    /// The scheduling node of worker `w` (a spare: its mirror's), the index
    /// of `workersOfNode` and of the runtime's per-node injectors.
    func node(ofWorker w: Int) -> Int { nodeOfWorker[w % nodeOfWorker.count] }

    /// The SLIT distance between the nodes of two workers (10 when they
    /// share a node).
    func distance(fromWorker a: Int, toWorker b: Int) -> Int {
        distances[positionOfNode[node(ofWorker: a)]][positionOfNode[node(ofWorker: b)]]
    }

    static func stealGroups(nodeOfWorker: [Int], workersOfNode: [[Int]], positionOfNode: [Int],
                            machine: MachineTopology) -> [[[Int]]] {
        let byNode = workersOfNode.indices.map { own in
            let from = positionOfNode[own]
            let others = workersOfNode.indices.filter { $0 != own }.sorted { a, b in
                let (pa, pb) = (positionOfNode[a], positionOfNode[b])
                let (da, db) = (machine.distances[from][pa], machine.distances[from][pb])
                return da != db ? da < db : machine.nodes[pa].id < machine.nodes[pb].id
            }
            return [workersOfNode[own]] + others.map { workersOfNode[$0] }
        }
        return nodeOfWorker.map { byNode[$0] }
    }
}
