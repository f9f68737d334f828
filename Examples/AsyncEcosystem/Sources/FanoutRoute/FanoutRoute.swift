import GreenThreads
import Hummingbird

/// A Hummingbird route whose handler hands its work to green threads.
///
/// `GET /squares?count=N` answers the sum of the squares of 1...N, each
/// square computed by a green thread of its own that first waits
/// `delay` (standing in for a call to a slow backend). The handler is
/// async; the green threads are not: it starts one green thread on the
/// runtime (`Runtime.spawn`, callable from any thread), which fans out
/// with `go` and joins, and the handler awaits the result with
/// `try await handle.value`. That await suspends the handler's task and
/// holds no thread of Swift's cooperative pool, and cancelling the task
/// (the client went away) cancels the green thread, whose sleeping
/// children then throw out of their sleeps.
///
/// Each request costs one green thread per part, so the count is
/// bounded: a larger one is a 400, not a million stacks.
public enum FanoutRoute {
    /// The largest `count` a request may ask for.
    public static let maxCount = 10_000

    /// Adds `GET /squares` to `router`, running on `runtime`.
    public static func add(
        to router: Router<BasicRequestContext>,
        runtime: Runtime,
        delay: Duration = .milliseconds(20)
    ) {
        router.get("/squares") { request, _ -> String in
            let count = request.uri.queryParameters.get("count", as: Int.self) ?? 10
            guard (1...maxCount).contains(count) else {
                throw HTTPError(.badRequest, message: "count must be in 1...\(maxCount)")
            }
            let handle = runtime.spawn { () throws -> Int in
                let parts = (1...count).map { i in
                    go { () throws -> Int in
                        try GreenThread.sleep(for: delay)
                        return i * i
                    }
                }
                return try joinAll(parts).reduce(0, +)
            }
            return "\(try await handle.value)\n"
        }
    }
}
