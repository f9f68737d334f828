#if canImport(Glibc)
import Glibc
#endif

/// The sysfs reader: the same `MachineTopology` as libnuma's, from a
/// directory laid out like /sys/devices/system/node (`nodeN/cpulist`,
/// `nodeN/distance`, `nodeN/meminfo`). The runtime reads through libnuma;
/// this one reads test fixtures of real machines, and checks libnuma's
/// answers inside a multi-node guest.
extension MachineTopology {
    static let sysfsRoot = "/sys/devices/system/node"

    /// Reads the node directories under `root`; nil if there are none.
    init?(sysfs root: String = MachineTopology.sysfsRoot) {
        let ids = Self.nodeIDs(in: root)
        guard !ids.isEmpty else { return nil }
        var nodes: [Node] = []
        var rows: [[Int]] = []
        for id in ids {
            let dir = "\(root)/node\(id)"
            let cpus = Self.readFile("\(dir)/cpulist").map(Self.parseCPUList) ?? []
            nodes.append(Node(id: id, cpus: cpus, memoryBytes: Self.readFile("\(dir)/meminfo").flatMap(Self.memTotal)))
            // The row lists the distance to every online node, in id order:
            // its columns are positions among `ids`, not ids.
            rows.append(Self.readFile("\(dir)/distance").map { $0.split(whereSeparator: \.isWhitespace).compactMap { Int($0) } } ?? [])
        }
        if rows.allSatisfy({ $0.count == ids.count }) {
            self.init(nodes: nodes, distances: rows, note: nil)
        } else {
            self.init(nodes: nodes, distances: Self.uniformDistances(ids.count),
                      note: "\(root): a distance file does not list every node; 20 assumed between nodes")
        }
    }

    /// Ids of the `nodeN` directories under `root`, in increasing order.
    private static func nodeIDs(in root: String) -> [Int] {
        guard let dir = opendir(root) else { return [] }
        defer { closedir(dir) }
        var ids: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix("node"), let id = Int(name.dropFirst(4)), id >= 0 { ids.append(id) }
        }
        return ids.sorted()
    }

    /// Bytes of "Node N MemTotal:  X kB" in a node's meminfo.
    static func memTotal(_ meminfo: String) -> Int? {
        for line in meminfo.split(separator: "\n") where line.contains("MemTotal:") {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard let i = fields.firstIndex(of: "MemTotal:"), i + 1 < fields.count, let kb = Int(fields[i + 1]) else {
                return nil
            }
            return kb * 1024
        }
        return nil
    }

    /// Parses Linux's "0-3,8,10-11" CPU list format (empty for a node
    /// without CPUs).
    static func parseCPUList(_ text: String) -> [Int] {
        var result: [Int] = []
        for part in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            let bounds = part.split(separator: "-")
            if bounds.count == 1, let v = Int(bounds[0]) {
                result.append(v)
            } else if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b {
                result.append(contentsOf: a...b)
            }
        }
        return result
    }

    static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
