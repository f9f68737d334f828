import CContext

/// Suspends until `condition` holds; false if it did not within 10 s.
func eventuallyAsync(_ condition: () -> Bool) async -> Bool {
    let deadline = gt_now_ns() + 10_000_000_000
    while !condition() {
        if gt_now_ns() > deadline { return false }
        try? await Task.sleep(for: .microseconds(200))
    }
    return true
}
