import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// Fixtures/sysfs/NAME: copies of /sys/devices/system/node of real machines.
func sysfsFixture(_ name: String) -> String {
    let file = "\(#filePath)"
    return "\(file[..<file.lastIndex(of: "/")!])/Fixtures/sysfs/\(name)"
}

/// A libnuma that answers from a table (or not at all), for the libnuma
/// reader without the machine's library.
struct FakeLibNUMA: LibNUMA {
    var status = Int32(GT_NUMA_OK)
    /// Node id → (CPUs, bytes); ids missing here do not exist.
    var nodes: [Int: (cpus: [Int], bytes: Int64)] = [:]
    var distances: [Int: [Int: Int]] = [:]

    func load() -> Int32 { status }
    func maxNode() -> Int { nodes.keys.max() ?? 0 }
    func configuredCPUs() -> Int { (nodes.values.flatMap(\.cpus).max() ?? -1) + 1 }
    func node(ofCPU cpu: Int) -> Int { nodes.first { $0.value.cpus.contains(cpu) }?.key ?? -1 }
    func distance(_ from: Int, _ to: Int) -> Int { distances[from]?[to] ?? 0 }
    func nodeBytes(_ node: Int) -> Int64 { nodes[node]?.bytes ?? -1 }
}

/// Placement and steal order from simulated, fixture and fake-libnuma
/// machines; the validation of `NUMAMode`; pinning under an affinity mask.
@Suite("Topology")
struct TopologyTests {
    /// Victim groups of worker `w`, as node ids.
    private func nodeOrder(_ t: Topology, fromWorker w: Int) -> [Int] {
        t.stealOrder(fromWorker: w).map { t.nodeID(ofWorker: $0[0]) }
    }

    // MARK: Simulations

    @Test func simulatedTwoByTwo() {
        let t = Topology(workers: 4, mode: .simulated(nodes: 2))
        #expect(t.nodes.map(\.id) == [0, 1])
        #expect(t.nodes.map(\.workers) == [[0, 1], [2, 3]])
        #expect(t.nodeCount == 2 && t.workersOfNode == [[0, 1], [2, 3]])
        #expect(t.stealOrder(fromWorker: 0) == [[0, 1], [2, 3]])
        #expect(t.stealOrder(fromWorker: 3) == [[2, 3], [0, 1]])
        #expect(t.distance(from: 0, to: 1) == 20 && t.distance(from: 1, to: 1) == 10)
        #expect(t.distance(fromWorker: 0, toWorker: 1) == 10)
        #expect(t.distance(fromWorker: 1, toWorker: 2) == 20)
        #expect((0..<4).map(t.node(ofWorker:)) == [0, 0, 1, 1])
        #expect(t.note == nil)
    }

    /// Node 0 is near node 2 and far from 1 and 3: steals follow the
    /// distances, not the node ids.
    static let crossed = [
        [10, 32, 16, 32],
        [32, 10, 32, 16],
        [16, 32, 10, 32],
        [32, 16, 32, 10],
    ]

    @Test func fourNodeStealOrderFollowsDistance() {
        let t = Topology(workers: 8, mode: .simulated(distances: Self.crossed))
        #expect(t.nodes.map(\.workers) == [[0, 1], [2, 3], [4, 5], [6, 7]])
        #expect(t.stealOrder(fromWorker: 0) == [[0, 1], [4, 5], [2, 3], [6, 7]])
        #expect(t.stealOrder(fromWorker: 3) == [[2, 3], [6, 7], [0, 1], [4, 5]])
        #expect(nodeOrder(t, fromWorker: 5) == [2, 0, 1, 3])
        #expect(nodeOrder(t, fromWorker: 7) == [3, 1, 0, 2])
        for w in 0..<8 {
            let d = t.stealOrder(fromWorker: w).map { t.distance(fromWorker: w, toWorker: $0[0]) }
            #expect(d == d.sorted() && d[0] == 10, "worker \(w): \(d)")
        }
        #expect(t.distance(fromWorker: 0, toWorker: 4) == 16 && t.distance(fromWorker: 0, toWorker: 7) == 32)
    }

    /// The runtime hands the same groups to its workers (with the spares
    /// of each worker after it) and runs on them.
    @Test func aRuntimeStealsInTheTopologysOrder() throws {
        let rt = Runtime(configuration: .init(workers: 8, numa: .simulated(distances: Self.crossed)))
        defer { rt.shutdown() }
        #expect(rt.topology.nodes.map(\.workers) == [[0, 1], [2, 3], [4, 5], [6, 7]])
        #expect(rt.stats.numaNodes == 4)
        #expect(rt.placement.map(\.node) == [0, 0, 1, 1, 2, 2, 3, 3])
        for w in rt.core.workers.prefix(8) {
            let groups = w.victims.map { $0.map { $0.takeUnretainedValue().index }.filter { $0 < 8 } }
            #expect(groups == rt.core.topology.stealOrder(fromWorker: w.index))
        }
        #expect(try rt.run { fib(15) } == 610)
    }

    /// An asymmetric matrix is a valid SLIT: each worker orders by its own
    /// node's row.
    @Test func anAsymmetricMatrixOrdersByTheThiefsRow() {
        let m = [[10, 20, 30], [40, 10, 20], [15, 25, 10]]
        #expect(Runtime.NUMAMode.simulated(distances: m).validationFailure == nil)
        let t = Topology(workers: 3, mode: .simulated(distances: m))
        #expect(nodeOrder(t, fromWorker: 0) == [0, 1, 2])
        #expect(nodeOrder(t, fromWorker: 1) == [1, 2, 0])
        #expect(nodeOrder(t, fromWorker: 2) == [2, 0, 1])
        #expect(t.distance(from: 1, to: 0) == 40 && t.distance(from: 0, to: 1) == 20)
    }

    /// Fewer workers than nodes: the nodes without workers are listed but
    /// take no part in scheduling.
    @Test func moreSimulatedNodesThanWorkers() {
        let t = Topology(workers: 2, mode: .simulated(nodes: 4))
        #expect(t.nodes.map(\.workers) == [[0], [1], [], []])
        #expect(t.nodeCount == 2)
        #expect(t.stealOrder(fromWorker: 0) == [[0], [1]])
    }

    // MARK: Bad input

    @Test func badModesAreNamed() {
        let zero = Runtime.NUMAMode.simulated(nodes: 0).validationFailure
        #expect(zero?.contains("numa: .simulated(nodes:) needs at least one node (got nodes: 0)") == true)
        #expect(Runtime.NUMAMode.simulated(nodes: -3).validationFailure != nil)
        let cases: [([[Int]], String)] = [
            ([], "empty matrix"),
            ([[10, 20], [20]], "must be square: row 1 has 1 entries for 2 nodes"),
            ([[10, 20, 20], [20, 10, 20]], "must be square: row 0 has 3 entries for 2 nodes"),
            ([[10, 20], [20, 12]], "distances[1][1] is 12"),
            ([[10, 10], [20, 10]], "distances[0][1] is 10"),
            ([[10, 20], [255, 10]], "distances[1][0] is 255"),
        ]
        for (matrix, message) in cases {
            let failure = Runtime.NUMAMode.simulated(distances: matrix).validationFailure
            #expect(failure?.contains("numa: .simulated(distances:)") == true, "\(matrix)")
            #expect(failure?.contains(message) == true, "\(matrix): \(failure ?? "accepted")")
        }
        for mode in [Runtime.NUMAMode.auto, .disabled, .simulated(nodes: 3), .simulated(distances: [[10]])] {
            #expect(mode.validationFailure == nil)
        }
    }

    // MARK: sysfs fixtures

    @Test func parsesCPULists() {
        #expect(MachineTopology.parseCPUList("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11])
        #expect(MachineTopology.parseCPUList("\n").isEmpty)
        #expect(MachineTopology.parseCPUList("0,2,4") == [0, 2, 4])
    }

    /// Two Xeon sockets that number CPUs alternately: worker i fills node 0's
    /// even CPUs before any worker lands on node 1.
    @Test func intelInterleavedNumbering() throws {
        let m = try #require(MachineTopology(sysfs: sysfsFixture("intel-2s-interleaved")))
        #expect(m.nodes.map(\.id) == [0, 1])
        #expect(m.nodes[0].cpus == Array(stride(from: 0, to: 64, by: 2)))
        #expect(m.nodes[1].cpus == Array(stride(from: 1, to: 64, by: 2)))
        #expect(m.nodes[0].memoryBytes == 197_571_392 * 1024)
        #expect(m.distances == [[10, 21], [21, 10]])
        #expect(m.note == nil)

        let t = Topology(workers: 64, machine: m, allowedCPUs: Array(0..<64), pin: nil)
        #expect(t.pinsWorkers)
        #expect((0..<32).map(t.cpu(ofWorker:)) == stride(from: 0, to: 64, by: 2).map { $0 })
        #expect((32..<64).map(t.cpu(ofWorker:)) == stride(from: 1, to: 64, by: 2).map { $0 })
        #expect(t.nodes.map(\.workers) == [Array(0..<32), Array(32..<64)])
        #expect(t.distance(fromWorker: 0, toWorker: 40) == 21)

        // Under `taskset -c 0-3`: two CPUs per node, and only those.
        let four = Topology(workers: 4, machine: m, allowedCPUs: [0, 1, 2, 3], pin: nil)
        #expect(four.nodes.map(\.cpus) == [[0, 2], [1, 3]])
        #expect((0..<4).map(four.cpu(ofWorker:)) == [0, 2, 1, 3])
        #expect(four.nodes.map(\.workers) == [[0, 1], [2, 3]])
        #expect(four.pinsWorkers)
        #expect([0, 1, 2, 3].map(four.node(ofCPU:)) == [0, 1, 0, 1])
        // Two workers fill node 0: node 1's CPUs have no scheduling node.
        let two = Topology(workers: 2, machine: m, allowedCPUs: [0, 1, 2, 3], pin: nil)
        #expect([0, 1, 2, 3].map(two.node(ofCPU:)) == [0, nil, 0, nil])
        #expect(!two.pinsWorkers && two.nodeCount == 1)
    }

    /// Four EPYC dies, 16 apart within a socket and 32 across.
    @Test func amdFourNodes() throws {
        let m = try #require(MachineTopology(sysfs: sysfsFixture("amd-4node")))
        #expect(m.nodes.map(\.id) == [0, 1, 2, 3])
        #expect(m.nodes[2].cpus == Array(16...23) + Array(48...55))
        #expect(m.distances == [[10, 16, 32, 32], [16, 10, 32, 32], [32, 32, 10, 16], [32, 32, 16, 10]])
        let t = Topology(workers: 64, machine: m, allowedCPUs: Array(0..<64), pin: nil)
        #expect(t.nodes.map(\.workers.count) == [16, 16, 16, 16])
        #expect(t.cpu(ofWorker: 8) == 32, "a node's SMT siblings follow its cores")
        #expect(nodeOrder(t, fromWorker: 0) == [0, 1, 2, 3])
        #expect(nodeOrder(t, fromWorker: 40) == [2, 3, 0, 1])
        #expect(nodeOrder(t, fromWorker: 63) == [3, 2, 0, 1])
    }

    /// A memory-only node is listed, with its memory and no CPU, and never
    /// gets a worker.
    @Test func memoryOnlyNode() throws {
        let m = try #require(MachineTopology(sysfs: sysfsFixture("memory-only-node")))
        #expect(m.nodes.map(\.id) == [0, 1, 2])
        #expect(m.nodes[2].cpus.isEmpty && m.nodes[2].memoryBytes == 134_217_728 * 1024)
        let t = Topology(workers: 16, machine: m, allowedCPUs: Array(0..<16), pin: nil)
        #expect(t.nodes.map(\.workers) == [Array(0..<8), Array(8..<16), []])
        #expect(t.nodeCount == 2)
        #expect(nodeOrder(t, fromWorker: 0) == [0, 1])
        #expect(t.distance(from: 0, to: 2) == 17 && t.distance(from: 2, to: 1) == 28)
        #expect(t.node(ofCPU: 3) == 0 && t.node(ofCPU: 12) == 1 && t.node(ofCPU: 99) == nil)

        // Twice as many workers as CPUs: spread over the nodes, none pinned,
        // not even when asked.
        let over = Topology(workers: 32, machine: m, allowedCPUs: Array(0..<16), pin: true)
        #expect(over.nodes.map(\.workers) == [Array(0..<16), Array(16..<32), []])
        #expect((0..<32).allSatisfy { over.pinnedCPU(ofWorker: $0) == nil })
        #expect(!Topology(workers: 32, machine: m, allowedCPUs: Array(0..<16), pin: nil).pinsWorkers)
    }

    /// Printed, a topology reads like `numactl --hardware`, note included.
    @Test func describesItself() throws {
        let m = try #require(MachineTopology(sysfs: sysfsFixture("memory-only-node")))
        let t = Topology(workers: 4, machine: m, allowedCPUs: [0, 1, 2, 3, 8, 10, 11], pin: nil)
        #expect(t.description == """
            node 0: CPUs 0-3, workers 0-3, 32000 MiB, distances 10 21 17
            node 1: CPUs 8,10-11, workers none, 32000 MiB, distances 21 10 28
            node 2: CPUs none, workers none, 131072 MiB, distances 17 28 10
            """)
        let fallback = MachineTopology(libnuma: FakeLibNUMA(status: Int32(GT_NUMA_UNAVAILABLE)))
        let single = Topology(workers: 2, machine: fallback, allowedCPUs: [0, 1], pin: nil)
        #expect(single.description.hasPrefix("node 0: CPUs 0-1, workers 0-1, distances 10\nnote: numa_available() < 0"))
    }

    @Test func aMissingRootReadsNothing() {
        #expect(MachineTopology(sysfs: sysfsFixture("no-such-machine")) == nil)
    }

    // MARK: libnuma

    /// The libnuma path builds the same model as sysfs would: sparse ids,
    /// a CPU-less node with memory.
    @Test func libnumaReaderBuildsTheModel() {
        let lib = FakeLibNUMA(
            nodes: [0: ([0, 1], 1 << 30), 2: ([2, 3], 1 << 30), 3: ([], 1 << 32)],
            distances: [0: [0: 10, 2: 20, 3: 30], 2: [0: 20, 2: 10, 3: 30], 3: [0: 30, 2: 30, 3: 10]])
        let m = MachineTopology(libnuma: lib)
        #expect(m == MachineTopology(
            nodes: [.init(id: 0, cpus: [0, 1], memoryBytes: 1 << 30),
                    .init(id: 2, cpus: [2, 3], memoryBytes: 1 << 30),
                    .init(id: 3, cpus: [], memoryBytes: 1 << 32)],
            distances: [[10, 20, 30], [20, 10, 30], [30, 30, 10]], note: nil))
        let t = Topology(workers: 4, machine: m, allowedCPUs: [0, 1, 2, 3], pin: nil)
        #expect((0..<4).map(t.nodeID(ofWorker:)) == [0, 0, 2, 2])
        #expect((0..<4).map(t.node(ofWorker:)) == [0, 0, 1, 1])
        #expect(t.distance(from: 2, to: 3) == 30)
    }

    /// Without libnuma, or with a kernel without NUMA: one node with every
    /// allowed CPU, and a note.
    @Test func noLibNUMAMeansOneNodeAndANote() {
        for (status, words) in [(Int32(GT_NUMA_NO_LIBRARY), "could not be loaded"),
                                (Int32(GT_NUMA_NO_SYMBOL), "lacks"),
                                (Int32(GT_NUMA_UNAVAILABLE), "numa_available() < 0")] {
            let m = MachineTopology(libnuma: FakeLibNUMA(status: status, nodes: [0: ([0], 1), 1: ([1], 1)]))
            #expect(m.nodes.count == 1 && m.distances == [[10]])
            #expect(m.note?.contains(words) == true, "\(m.note ?? "no note")")
            let t = Topology(workers: 3, machine: m, allowedCPUs: [0, 5, 9], pin: nil)
            #expect(t.nodes.map(\.cpus) == [[0, 5, 9]])
            #expect(t.stealOrder(fromWorker: 1) == [[0, 1, 2]])
            #expect(t.note == m.note)
        }
    }

    /// The C shim's own fallback: a library that is not there, and one
    /// without libnuma's functions, are reported, not crashed on.
    @Test func theShimReportsAMissingLibrary() {
        #expect(gt_numa_probe("libgreenthreads-no-such-numa.so.1") == GT_NUMA_NO_LIBRARY)
        #expect(gt_numa_probe("libc.so.6") == GT_NUMA_NO_SYMBOL)
        if gt_numa_load() == GT_NUMA_OK {
            #expect(gt_numa_probe("libnuma.so.1") == GT_NUMA_OK)
            #expect(Runtime(workers: 1).topology.note == nil)
        } else {
            #expect(Runtime(workers: 1).topology.note != nil)
        }
    }

    // MARK: Pinning and the current worker

    /// Runs `body` on an OS thread of its own whose affinity mask is `cpus`:
    /// the mask is inherited by the runtime's workers, as under `taskset`.
    private func underMask<T: Sendable>(_ cpus: [Int], _ body: @escaping @Sendable () throws -> T) throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let thread = startThread {
            let rc = gt_thread_set_cpus(cpus.map(Int32.init), Int32(cpus.count))
            let r: Result<T, any Error> = rc == 0 ? Result { try body() } : .failure(Errno(-rc))
            outcome.withLock { $0 = r }
        }
        joinThread(thread)
        return try #require(outcome.withLock { $0 }).get()
    }

    struct Errno: Error { let code: Int32; init(_ code: Int32) { self.code = code } }

    /// The calling thread's own affinity mask.
    private func threadCPUs() -> [Int] {
        var buffer = [Int32](repeating: 0, count: 1024)
        let n = gt_thread_cpus(&buffer, Int32(buffer.count))
        return buffer.prefix(Int(n)).map(Int.init)
    }

    /// What each worker of `rt` sees: its affinity mask and CPU, reported
    /// by green threads (each reads both without switching in between).
    private func masks(of rt: Runtime) throws -> [Int: (cpus: [Int], cpu: Int)] {
        // Results come back through join, not a shared lock: a lock
        // outside this package is invisible to ThreadSanitizer.
        try rt.run { () throws -> [Int: (cpus: [Int], cpu: Int)] in
            var seen: [Int: (cpus: [Int], cpu: Int)] = [:]
            for _ in 0..<50 {
                let hs = (0..<(4 * rt.workerCount)).map { _ in go { () -> (worker: Int?, cpus: [Int], cpu: Int) in
                    let cpus = threadCPUs()
                    let cpu = Int(gt_current_cpu())
                    let w = GreenThread.currentWorker
                    for _ in 0..<2_000 { GreenThread.yield() }
                    return (w, cpus, cpu)
                } }
                for r in try joinAll(hs) { if let w = r.worker { seen[w] = (r.cpus, r.cpu) } }
                if seen.count == rt.workerCount { break }
            }
            return seen
        }
    }

    /// Confined to one CPU (as by `taskset -c N`), a default runtime has
    /// one worker, on that CPU, pinned there; a bigger one is not pinned
    /// and still runs.
    @Test func pinningHonoursTheAffinityMask() throws {
        let cpu = try #require(Topology.availableCPUs().last)
        try underMask([cpu]) {
            let rt = Runtime()
            defer { rt.shutdown() }
            #expect(rt.workerCount == 1)
            #expect(rt.topology.nodes.flatMap(\.cpus) == [cpu])
            #expect(rt.placement.map(\.cpu) == [cpu])
            #expect(rt.core.topology.pinsWorkers)
            let seen = try masks(of: rt)
            #expect(seen[0]?.cpus == [cpu] && seen[0]?.cpu == cpu)
        }
        try underMask([cpu]) {
            let rt = Runtime(configuration: .init(workers: 3, pinWorkers: true))
            defer { rt.shutdown() }
            #expect(rt.placement.map(\.cpu) == [nil, nil, nil])
            #expect(rt.topology.nodes.flatMap(\.workers).sorted() == [0, 1, 2])
            let value = try rt.run { fib(12) }
            #expect(value == 144)
        }
    }

    /// One worker per CPU: each is pinned to its own CPU by default, and a
    /// blocking call's thread, started from a pinned worker, is not.
    @Test func aWorkerPerCPUIsPinnedByDefault() throws {
        let cpus = Topology.availableCPUs()
        let rt = Runtime()
        defer { rt.shutdown() }
        #expect(rt.workerCount == cpus.count && rt.core.topology.pinsWorkers)
        #expect(Set(rt.placement.compactMap(\.cpu)) == Set(cpus))
        let seen = try masks(of: rt)
        for (w, placed) in rt.placement.enumerated() {
            guard let s = seen[w] else { continue }
            #expect(s.cpus == [placed.cpu!] && s.cpu == placed.cpu!, "worker \(w)")
        }
        let blockingMask = try rt.run { GreenThread.blocking { threadCPUs() } }
        #expect(blockingMask == cpus)
        // A runtime created on a pinned worker still sees every CPU.
        let nested = try rt.run { () -> [Int] in
            let inner = Runtime()
            defer { inner.shutdown() }
            return inner.topology.nodes.flatMap(\.cpus).sorted()
        }
        #expect(nested == cpus)
    }

    @Test func pinningCanBeTurnedOff() throws {
        let cpus = Topology.availableCPUs()
        let rt = Runtime(configuration: .init(workers: cpus.count, pinWorkers: false))
        defer { rt.shutdown() }
        #expect(!rt.core.topology.pinsWorkers)
        for (_, s) in try masks(of: rt) { #expect(s.cpus == cpus) }
    }

    @Test func currentWorkerAndNode() throws {
        #expect(GreenThread.currentWorker == nil && GreenThread.currentNode == nil)
        // Without hand-off: a spare sysmon started beside a worker that a
        // loaded machine descheduled would report an index past the four.
        let rt = Runtime(configuration: .init(workers: 4, numa: .simulated(nodes: 2), handoffThreshold: nil))
        defer { rt.shutdown() }
        let placement = rt.placement.map(\.node)
        let pairs = try rt.run { () throws -> [[Int]] in
            let hs = (0..<32).map { _ in go { () -> [Int] in
                [GreenThread.currentWorker ?? -1, GreenThread.currentNode ?? -1]
            } }
            return try joinAll(hs)
        }
        for p in pairs {
            #expect((0..<4).contains(p[0]) && p[1] == placement[p[0]], "\(p)")
        }
        #expect(try rt.run { GreenThread.blocking { GreenThread.currentWorker } } == nil)
    }
}
