import AsyncHTTPClient
import FanoutRoute
import GreenThreads
import Hummingbird
import LocalSite
import NIOCore
import Testing

/// GETs `path` from the server on `port`: status and body.
private func get(_ path: String, port: Int) async throws -> (status: Int, body: String) {
    let response = try await HTTPClient.shared.execute(
        HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)"), timeout: .seconds(30))
    let body = try await response.body.collect(upTo: 1 << 20)
    return (Int(response.status.code), String(buffer: body))
}

@Suite("Hummingbird route fanning out to green threads")
struct FanoutRouteTests {
    @Test func squaresAreSummedByGreenThreads() async throws {
        let runtime = Runtime(workers: 2)
        defer { runtime.shutdown() }
        let router = Router()
        FanoutRoute.add(to: router, runtime: runtime, delay: .milliseconds(20))
        let before = runtime.stats.spawned
        let clock = ContinuousClock()
        let start = clock.now
        let (status, body) = try await withLocalServer(router) { port in
            try await get("/squares?count=500", port: port)
        }
        let elapsed = clock.now - start
        #expect(status == 200)
        #expect(body == "\(500 * 501 * 1001 / 6)\n")
        // The request's green thread and one per square.
        #expect(runtime.stats.spawned - before == 501)
        // 500 sleeps of 20 ms, concurrent: far below their 10 s sum even
        // on a loaded machine.
        #expect(elapsed < .seconds(5))
    }

    @Test func concurrentRequestsShareTheRuntime() async throws {
        let runtime = Runtime(workers: 2)
        defer { runtime.shutdown() }
        let router = Router()
        FanoutRoute.add(to: router, runtime: runtime, delay: .milliseconds(5))
        let bodies = try await withLocalServer(router) { port in
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for n in 1...20 {
                    group.addTask { (n, try await get("/squares?count=\(n)", port: port).body) }
                }
                return try await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
            }
        }
        #expect(bodies.count == 20)
        for n in 1...20 {
            #expect(bodies[n] == "\(n * (n + 1) * (2 * n + 1) / 6)\n", "count=\(n)")
        }
    }

    @Test func countOutOfRangeIsABadRequest() async throws {
        let runtime = Runtime(workers: 1)
        defer { runtime.shutdown() }
        let router = Router()
        FanoutRoute.add(to: router, runtime: runtime)
        let statuses = try await withLocalServer(router) { port in
            [try await get("/squares?count=0", port: port).status,
             try await get("/squares?count=\(FanoutRoute.maxCount + 1)", port: port).status]
        }
        #expect(statuses == [400, 400])
        #expect(runtime.stats.spawned == 0)
    }
}
