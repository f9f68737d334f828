/// The checks `Runtime.init` makes on `Configuration.numa`, as a function
/// that returns the message, so that tests can check each message without
/// a precondition failure ending the process.
extension Runtime.NUMAMode {
    /// Why this mode cannot build a topology, naming the field; nil if it can.
    var validationFailure: String? {
        switch kind {
        case .auto, .disabled:
            return nil
        case .simulatedNodes(let nodes):
            return nodes > 0 ? nil
                : "GreenThreads: numa: .simulated(nodes:) needs at least one node (got nodes: \(nodes))"
        case .simulatedDistances(let d):
            let field = "GreenThreads: numa: .simulated(distances:)"
            guard !d.isEmpty else { return "\(field) needs at least one node (got an empty matrix)" }
            for (i, row) in d.enumerated() {
                guard row.count == d.count else {
                    return "\(field) must be square: row \(i) has \(row.count) entries for \(d.count) nodes"
                }
                for (j, value) in row.enumerated() {
                    if i == j, value != 10 {
                        return "\(field): distances[\(i)][\(i)] is \(value); a node's distance to itself is 10"
                    }
                    if i != j, !(11...254).contains(value) {
                        return "\(field): distances[\(i)][\(j)] is \(value); between two nodes it must be 11...254 (SLIT units, 10 = local)"
                    }
                }
            }
            return nil
        }
    }
}
