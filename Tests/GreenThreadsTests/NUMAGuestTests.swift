import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// The runtime's topology against what this machine's libnuma and sysfs
/// report, asked at run time: one node on an ordinary box, several inside a
/// multi-node guest (scripts/numa-vm-test.sh runs this suite there).
@Suite("NUMAGuestTests")
struct NUMAGuestTests {
    private var libnuma: Bool { gt_numa_load() == GT_NUMA_OK }

    /// Nodes, CPUs per node, memory and every distance equal libnuma's
    /// answers for the CPUs this process may use.
    @Test func runtimeTopologyEqualsLibNUMA() throws {
        let rt = Runtime()
        defer { rt.shutdown() }
        let t = rt.topology
        guard libnuma else {
            #expect(t.nodes.count == 1 && t.note != nil)
            return
        }
        #expect(t.note == nil)
        let allowed = Topology.availableCPUs()
        let sysfs = try #require(MachineTopology(sysfs: MachineTopology.sysfsRoot))
        #expect(t.nodes.map(\.id) == sysfs.nodes.map(\.id))
        for node in t.nodes {
            #expect(node.cpus == allowed.filter { gt_numa_node_of_cpu(Int32($0)) == node.id }, "node \(node.id)")
            #expect(node.memoryBytes.map(Int64.init) == gt_numa_node_bytes(Int32(node.id)), "node \(node.id)")
            for other in t.nodes {
                #expect(t.distance(from: node.id, to: other.id) == Int(gt_numa_distance(Int32(node.id), Int32(other.id))))
            }
        }
        #expect(t.nodes.flatMap(\.cpus).sorted() == allowed)
    }

    /// The two readers agree on this machine.
    @Test func libnumaAndSysfsAgree() throws {
        guard libnuma else { return }
        let sysfs = try #require(MachineTopology(sysfs: MachineTopology.sysfsRoot))
        #expect(MachineTopology(libnuma: SystemLibNUMA()) == sysfs)
    }

    /// Workers fill the nodes in order, each pinned to a CPU of its node:
    /// a green thread finds itself on its worker's CPU, and that CPU on
    /// `GreenThread.currentNode`. Hand-off is off: a guest's vCPUs stall
    /// often enough that sysmon would start a spare, and spares are not
    /// pinned by design (SpareWorker.swift).
    @Test func workersRunOnTheirNodes() throws {
        let rt = Runtime(configuration: .init(preemptionThreshold: nil, handoffThreshold: nil))
        defer { rt.shutdown() }
        let placement = rt.placement
        let ids = rt.topology.nodes.map(\.id)
        let order = placement.map { ids.firstIndex(of: $0.node)! }
        #expect(order == order.sorted(), "workers fill one node before the next: \(placement)")
        let samples = try rt.run { () throws -> [[Int]] in
            let hs = (0..<(8 * rt.workerCount)).map { _ in go { () -> [Int] in
                for _ in 0..<100 { GreenThread.yield() }
                return [GreenThread.currentWorker ?? -1, GreenThread.currentNode ?? -1, Int(gt_current_cpu())]
            } }
            return try joinAll(hs)
        }
        for s in samples {
            let (worker, node, cpu) = (s[0], s[1], s[2])
            try #require(placement.indices.contains(worker), "a sample from a worker that is not configured: \(s)")
            #expect(placement[worker].cpu == cpu && placement[worker].node == node, "\(s)")
            if libnuma { #expect(Int(gt_numa_node_of_cpu(Int32(cpu))) == node, "\(s)") }
        }
    }

    /// Each worker steals from nearer nodes before farther ones, by the
    /// distances libnuma reports.
    @Test func stealOrderFollowsLibNUMADistances() {
        let rt = Runtime()
        defer { rt.shutdown() }
        let t = rt.core.topology
        for w in 0..<rt.workerCount {
            let from = t.nodeID(ofWorker: w)
            let groups = t.stealOrder(fromWorker: w)
            #expect(groups[0].contains(w))
            #expect(groups.flatMap { $0 }.sorted() == Array(0..<rt.workerCount))
            let d = groups.map { t.distance(from: from, to: t.nodeID(ofWorker: $0[0])) }
            #expect(d == d.sorted() && d[0] == 10, "worker \(w): \(d)")
            if libnuma {
                #expect(d == groups.map { Int(gt_numa_distance(Int32(from), Int32(t.nodeID(ofWorker: $0[0])))) })
            }
        }
    }
}
