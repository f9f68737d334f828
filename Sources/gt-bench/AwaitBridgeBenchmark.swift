// The `await-bridge` benchmark: the cost of crossing between green threads
// and Swift concurrency, each measured beside the pure-concurrency way of
// doing the same in the same run.
//
//  * await: a green thread calls `GreenThread.await` on an async function
//    that returns at once (the body runs as a Task on the runtime's
//    `taskExecutor`, on the caller's worker; the thread parks until it
//    ends), against a Task doing the same with `await Task { ... }.value`
//    on the default executor. Reported: ns per call of each, and their
//    ratio (target <= 2). Also with 64 callers at once (64 green threads
//    against 64 Tasks).
//  * executor: the Task loop of the await row with every Task on the
//    runtime's `taskExecutor` (`exec_task_ns`), and its ratio to the
//    default executor's (`exec_ratio`).
//  * ping-pong: a Task and a green thread bounce an Int through two
//    unbuffered channels (`await send`/`await receive` on the Task's side),
//    against two Tasks bouncing it through two AsyncStreams. The Task on
//    the default executor (`pingpong_bridge_ns`) and on the runtime's
//    `taskExecutor` (`pingpong_exec_ns`). Reported: ns per round trip of
//    each, and their ratios to the streams (target for the executor's:
//    <= 1).
import CContext
import GreenThreads

enum AwaitBridgeWorkload {
    static let calls = 20_000
    static let roundTrips = 20_000

    /// An async function that completes without suspending.
    @inline(never)
    static func ready(_ i: Int) async -> Int { i &+ 1 }

    static func benchmark(workers: Int) throws -> Sample {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        // Warm both sides (stacks, the pool's threads) before timing.
        _ = try bridgeAwait(rt, calls / 10)
        _ = try taskAwait(calls / 10)
        _ = try taskAwait(calls / 10, on: rt.taskExecutor)
        let bridge = try bridgeAwait(rt, calls)
        let task = try taskAwait(calls)
        let execTask = try taskAwait(calls, on: rt.taskExecutor)
        let bridgeMany = try bridgeAwaitMany(rt, calls)
        let taskMany = try taskAwaitMany(calls)
        let pingBridge = try bridgePingPong(rt, roundTrips)
        let pingExec = try bridgePingPong(rt, roundTrips, on: rt.taskExecutor)
        let pingStream = try streamPingPong(roundTrips)
        return Sample(value: bridge, extras: [
            ("task_ns", task), ("await_ratio", bridge / task),
            ("exec_task_ns", execTask), ("exec_ratio", execTask / task),
            ("await64_bridge_ns", bridgeMany), ("await64_task_ns", taskMany), ("await64_ratio", bridgeMany / taskMany),
            ("pingpong_bridge_ns", pingBridge), ("pingpong_stream_ns", pingStream),
            ("pingpong_ratio", pingBridge / pingStream),
            ("pingpong_exec_ns", pingExec), ("pingpong_exec_ratio", pingExec / pingStream),
        ])
    }

    /// ns per `GreenThread.await` from one green thread.
    static func bridgeAwait(_ rt: Runtime, _ n: Int) throws -> Double {
        let start = gt_now_ns()
        let sum = try rt.run { () throws -> Int in
            var sum = 0
            for i in 0..<n { sum &+= try GreenThread.await { await ready(i) } }
            return sum
        }
        let elapsed = gt_now_ns() - start
        precondition(sum == n * (n + 1) / 2, "await-bridge: wrong sum")
        return Double(elapsed) / Double(n)
    }

    /// ns per `await Task { }.value` from one Task, both on `executor`
    /// (nil: the default executor). (This plain OS thread waits for that
    /// Task through `GreenThread.await`, outside the timing.)
    static func taskAwait(_ n: Int, on executor: GreenTaskExecutor? = nil) throws -> Double {
        let loop = { @Sendable () async -> (Int, Int64) in
            let start = gt_now_ns()
            var sum = 0
            for i in 0..<n { sum &+= await Task(executorPreference: executor) { await ready(i) }.value }
            return (sum, gt_now_ns() - start)
        }
        let (sum, elapsed) = try GreenThread.await { () async -> (Int, Int64) in
            await Task(executorPreference: executor, operation: loop).value
        }
        precondition(sum == n * (n + 1) / 2, "await-bridge: wrong sum")
        return Double(elapsed) / Double(n)
    }

    static let callers = 64

    /// ns per `GreenThread.await`, `callers` green threads calling at once.
    static func bridgeAwaitMany(_ rt: Runtime, _ n: Int) throws -> Double {
        let each = n / callers
        let start = gt_now_ns()
        let sum = try rt.run { () throws -> Int in
            let hs = (0..<callers).map { _ in
                go { () throws -> Int in
                    var sum = 0
                    for i in 0..<each { sum &+= try GreenThread.await { await ready(i) } }
                    return sum
                }
            }
            return try joinAll(hs).reduce(0, &+)
        }
        let elapsed = gt_now_ns() - start
        precondition(sum == callers * each * (each + 1) / 2, "await-bridge: wrong sum")
        return Double(elapsed) / Double(callers * each)
    }

    /// ns per `await Task { }.value`, `callers` Tasks calling at once.
    static func taskAwaitMany(_ n: Int) throws -> Double {
        let each = n / callers
        let (sum, elapsed) = try GreenThread.await { () async -> (Int, Int64) in
            let start = gt_now_ns()
            let sum = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<callers {
                    group.addTask {
                        var sum = 0
                        for i in 0..<each { sum &+= await Task { await ready(i) }.value }
                        return sum
                    }
                }
                return await group.reduce(0, &+)
            }
            return (sum, gt_now_ns() - start)
        }
        precondition(sum == callers * each * (each + 1) / 2, "await-bridge: wrong sum")
        return Double(elapsed) / Double(callers * each)
    }

    /// ns per round trip: a Task on `executor` (nil: the default one)
    /// sends, a green thread echoes.
    static func bridgePingPong(_ rt: Runtime, _ n: Int, on executor: GreenTaskExecutor? = nil) throws -> Double {
        let ping = Channel<Int>(), pong = Channel<Int>()
        let echo = rt.spawn { () throws in
            for v in ping { try pong.send(v) }
        }
        let loop = { @Sendable () async throws -> (Int, Int64) in
            let start = gt_now_ns()
            var sum = 0
            for i in 0..<n {
                try await ping.send(i)
                sum &+= try await pong.receive() ?? 0
            }
            return (sum, gt_now_ns() - start)
        }
        let (sum, elapsed) = try GreenThread.await { () async throws -> (Int, Int64) in
            try await Task(executorPreference: executor, operation: loop).value
        }
        ping.close()
        try echo.join()
        precondition(sum == n * (n - 1) / 2, "await-bridge: wrong ping-pong sum")
        return Double(elapsed) / Double(n)
    }

    /// ns per round trip: one Task yields into a stream, another echoes.
    static func streamPingPong(_ n: Int) throws -> Double {
        let (sum, elapsed) = try GreenThread.await { () async -> (Int, Int64) in
            let (pings, pingIn) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
            let (pongs, pongIn) = AsyncStream<Int>.makeStream(bufferingPolicy: .unbounded)
            let echo = Task {
                for await v in pings { pongIn.yield(v) }
                pongIn.finish()
            }
            let start = gt_now_ns()
            var sum = 0
            var replies = pongs.makeAsyncIterator()
            for i in 0..<n {
                pingIn.yield(i)
                sum &+= await replies.next() ?? 0
            }
            let elapsed = gt_now_ns() - start
            pingIn.finish()
            await echo.value
            return (sum, elapsed)
        }
        precondition(sum == n * (n - 1) / 2, "await-bridge: wrong stream ping-pong sum")
        return Double(elapsed) / Double(n)
    }
}
