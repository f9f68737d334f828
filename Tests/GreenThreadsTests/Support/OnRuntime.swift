import GreenThreads

/// Runs `body` as the main green thread of a fresh runtime of `workers`
/// workers, and shuts the runtime down afterwards.
func onRuntime<T: Sendable>(workers: Int = 2, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let rt = Runtime(workers: workers)
    defer { rt.shutdown() }
    return try rt.run(body)
}
