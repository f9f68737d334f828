/// A topology in the words of `numactl --hardware`, so that printing
/// `rt.topology` shows the placement and, if there is one, the note.
extension Runtime.Topology: CustomStringConvertible {
    /// One line per node (its CPUs and workers in Linux's list format, its
    /// memory, its row of distances), then the note, if any.
    public var description: String {
        var lines = nodes.enumerated().map { p, node in
            var line = "node \(node.id): CPUs \(Self.listFormat(node.cpus)), workers \(Self.listFormat(node.workers))"
            if let bytes = node.memoryBytes { line += ", \(bytes >> 20) MiB" }
            return line + ", distances \(distances[p].map(String.init).joined(separator: " "))"
        }
        if let note { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// "0-3,8,10-11", as in sysfs cpulist files; "none" when empty.
    static func listFormat(_ values: [Int]) -> String {
        guard !values.isEmpty else { return "none" }
        var parts: [String] = []
        var start = values[0], end = values[0]
        for v in values.dropFirst() {
            if v == end + 1 { end = v; continue }
            parts.append(start == end ? "\(start)" : "\(start)-\(end)")
            (start, end) = (v, v)
        }
        parts.append(start == end ? "\(start)" : "\(start)-\(end)")
        return parts.joined(separator: ",")
    }
}
