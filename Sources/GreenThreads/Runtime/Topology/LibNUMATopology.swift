import CContext
#if canImport(Glibc)
import Glibc
#endif

/// The libnuma queries the topology reader makes, as a protocol so that
/// tests can stand in a machine without libnuma, or one with several nodes.
protocol LibNUMA {
    /// `GT_NUMA_OK`, or why libnuma cannot answer (`gt_numa_load`).
    func load() -> Int32
    func maxNode() -> Int
    func configuredCPUs() -> Int
    /// -1 when unknown.
    func node(ofCPU cpu: Int) -> Int
    /// 0 when unknown.
    func distance(_ from: Int, _ to: Int) -> Int
    /// -1 when the node does not exist.
    func nodeBytes(_ node: Int) -> Int64
}

/// The process's libnuma.so.1, through CContext's dlopen shim (numa.c).
struct SystemLibNUMA: LibNUMA {
    func load() -> Int32 { gt_numa_load() }
    func maxNode() -> Int { Int(gt_numa_max_node()) }
    func configuredCPUs() -> Int { Int(gt_numa_configured_cpus()) }
    func node(ofCPU cpu: Int) -> Int { Int(gt_numa_node_of_cpu(Int32(cpu))) }
    func distance(_ from: Int, _ to: Int) -> Int { Int(gt_numa_distance(Int32(from), Int32(to))) }
    func nodeBytes(_ node: Int) -> Int64 { gt_numa_node_bytes(Int32(node)) }
}

extension MachineTopology {
    /// Reads the machine through `lib`; one node and a note when it cannot
    /// answer.
    init(libnuma lib: some LibNUMA) {
        let status = lib.load()
        guard status == Int32(GT_NUMA_OK) else {
            self = .singleNode(cpus: Self.configuredCPUs(), note: Self.note(forLoadStatus: status))
            return
        }
        var cpusOf: [Int: [Int]] = [:]
        for cpu in 0..<max(0, lib.configuredCPUs()) {
            let node = lib.node(ofCPU: cpu)
            if node >= 0 { cpusOf[node, default: []].append(cpu) }
        }
        // A node exists if it has memory (possibly 0 bytes: a CPU-only
        // node) or CPUs; ids may have gaps (an offlined node).
        var nodes: [Node] = []
        for id in 0...max(0, lib.maxNode()) {
            let bytes = lib.nodeBytes(id)
            let cpus = cpusOf[id] ?? []
            if bytes >= 0 || !cpus.isEmpty {
                nodes.append(Node(id: id, cpus: cpus, memoryBytes: bytes >= 0 ? Int(bytes) : nil))
            }
        }
        guard !nodes.isEmpty else {
            self = .singleNode(cpus: Self.configuredCPUs(), note: "libnuma reported no node; one node assumed")
            return
        }
        var distances = nodes.map { a in nodes.map { b in lib.distance(a.id, b.id) } }
        var note: String?
        if distances.joined().contains(where: { $0 <= 0 }) {
            distances = Self.uniformDistances(nodes.count)
            note = "libnuma reported no node distances; 20 assumed between nodes"
        }
        self.init(nodes: nodes, distances: distances, note: note)
    }

    static func note(forLoadStatus status: Int32) -> String {
        switch status {
        case Int32(GT_NUMA_NO_LIBRARY):
            "libnuma.so.1 could not be loaded (package libnuma1); one node assumed"
        case Int32(GT_NUMA_NO_SYMBOL):
            "libnuma.so.1 lacks a libnuma 2 function; one node assumed"
        case Int32(GT_NUMA_UNAVAILABLE):
            "numa_available() < 0: the kernel has no NUMA support; one node assumed"
        default:
            "libnuma failed (status \(status)); one node assumed"
        }
    }

    /// Every CPU the machine has, for the one-node fallback.
    private static func configuredCPUs() -> [Int] {
        Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_CONF))))
    }
}
