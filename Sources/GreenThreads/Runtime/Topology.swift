import CContext
#if canImport(Glibc)
import Glibc
#endif

/// Which NUMA node each worker belongs to, and the order in which a worker
/// looks at the others when it steals: its own node first, then the rest.
///
/// Everything that depends on placement (steal order, which injection queue
/// a worker drains first) is a function of this table, so real placement
/// (libnuma, memory binding) can replace the table without touching the
/// scheduler.
struct Topology: Sendable {
    let nodeCount: Int
    let nodeOfWorker: [Int]
    let cpuOfWorker: [Int?]
    let workersOfNode: [[Int]]
    /// Per worker: groups of victims, nearest first.
    private let stealGroups: [[[Int]]]
    /// Whether there is a worker for every CPU this process may run on (or
    /// the mask is unknown), so that the kernel has no CPU to spare for
    /// other threads (Scheduler/Monitor/CPUYield.swift).
    let workersCoverEveryCPU: Bool

    init(workers: Int, mode: Runtime.NUMAMode) {
        let cpus = Topology.availableCPUs()
        var cpuOf: [Int?] = []
        for i in 0..<workers { cpuOf.append(cpus.isEmpty ? nil : cpus[i % cpus.count]) }
        var nodeOf: [Int]
        switch mode {
        case .disabled:
            nodeOf = Array(repeating: 0, count: workers)
        case .simulated(let nodes):
            let n = max(1, min(nodes, workers))
            nodeOf = (0..<workers).map { $0 * n / workers }
        case .auto:
            let cpuNode = Topology.cpuToNode()
            let raw = cpuOf.map { cpu in cpu.flatMap { cpuNode[$0] } ?? 0 }
            // Renumber densely so node indices are 0..<nodeCount.
            let distinct = Array(Set(raw)).sorted()
            nodeOf = raw.map { distinct.firstIndex(of: $0)! }
        }
        let count = (nodeOf.max() ?? 0) + 1
        var members = Array(repeating: [Int](), count: count)
        for (w, n) in nodeOf.enumerated() { members[n].append(w) }
        nodeCount = count
        nodeOfWorker = nodeOf
        cpuOfWorker = cpuOf
        workersCoverEveryCPU = workers >= cpus.count
        workersOfNode = members
        stealGroups = (0..<workers).map { w in
            let own = nodeOf[w]
            return [members[own]] + (0..<count).filter { $0 != own }.map { members[$0] }
        }
    }

    /// The CPU to pin worker `w` to; nil for a spare (SpareWorker.swift),
    /// which runs wherever the kernel finds room.
    func cpu(ofWorker w: Int) -> Int? { w < cpuOfWorker.count ? cpuOfWorker[w] : nil }

    func stealOrder(fromWorker w: Int) -> [[Int]] { stealGroups[w] }

    /// The CPUs this process may run on (its affinity mask).
    static func availableCPUs() -> [Int] {
        var buffer = [Int32](repeating: 0, count: 4096)
        let n = gt_available_cpus(&buffer, Int32(buffer.count))
        return buffer.prefix(Int(n)).map(Int.init)
    }

    /// CPU → node, from sysfs (no libnuma needed at build time).
    static func cpuToNode() -> [Int: Int] {
        var map: [Int: Int] = [:]
        for node in 0..<1024 {
            guard let list = readFile("/sys/devices/system/node/node\(node)/cpulist") else {
                if node > 0 && map.isEmpty { break }
                if node > 64 { break }
                continue
            }
            for cpu in parseCPUList(list) { map[cpu] = node }
        }
        return map
    }

    /// Parses Linux's "0-3,8,10-11" CPU list format.
    static func parseCPUList(_ text: String) -> [Int] {
        var result: [Int] = []
        for part in text.split(separator: ",") {
            let bounds = part.trimmingWhitespace().split(separator: "-")
            if bounds.count == 1, let v = Int(bounds[0]) {
                result.append(v)
            } else if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b {
                result.append(contentsOf: a...b)
            }
        }
        return result
    }

    private static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = fread(&buf, 1, buf.count - 1, f)
        return String(decoding: buf[0..<n], as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return s
    }
}
