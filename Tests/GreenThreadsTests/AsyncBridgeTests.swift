import CContext
import Synchronization
import Testing
@testable import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

// Tests of the bridge between Swift concurrency and green threads, both ways:
// `GreenThread.await` (no deadlock with every worker parked in it, many at
// once, errors, cancellation both ways, plain OS threads) and async code
// waiting on channels, WaitGroup, GreenEvent and JoinHandle (every value
// delivered once, also when Task cancellation races a hand-over).

private struct AwaitBoom: Error, Equatable { let code: Int }

/// What an exit test's child wrote to stderr.
private func stderrText(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

/// Runs `body` as a green thread of a fresh runtime and awaits its result
/// without blocking a thread of the cooperative pool (the bridge's Tasks
/// need those threads; a test blocked in `Runtime.run` would hold one).
private func onRuntime<T: Sendable>(workers: Int, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    let rt = Runtime(workers: workers)
    defer { rt.shutdown() }
    return try await rt.spawn(body).value
}

/// Yields (or sleeps, off a runtime) until `condition` holds; false if it
/// did not within 10 s.
private func eventuallyGreen(_ condition: () -> Bool) -> Bool {
    let deadline = gt_now_ns() + 10_000_000_000
    while !condition() {
        if gt_now_ns() > deadline { return false }
        if GreenThread.current != nil { GreenThread.yield() } else { usleep(100) }
    }
    return true
}

/// What is wrong with `got` as a delivery of 0..<total, each exactly once:
/// "" if nothing, else the first few missing and duplicated values (short,
/// unlike a failed comparison of whole arrays).
private func deliveryProblems(_ got: [Int], total: Int) -> String {
    var seen = [Int](repeating: 0, count: total)
    var strays: [Int] = []
    for v in got {
        if v >= 0 && v < total { seen[v] += 1 } else { strays.append(v) }
    }
    let missing = (0..<total).filter { seen[$0] == 0 }
    let duplicated = (0..<total).filter { seen[$0] > 1 }
    if missing.isEmpty && duplicated.isEmpty && strays.isEmpty { return "" }
    return "missing \(missing.count) \(missing.prefix(5)), duplicated \(duplicated.count) "
        + "\(duplicated.prefix(5)), strays \(strays.prefix(5))"
}

// MARK: - GreenThread.await

@Suite("AsyncBridgeTests: GreenThread.await", .serialized)
struct GreenAwaitTests {
    /// More green threads than workers, all parked in `GreenThread.await`,
    /// whose Tasks wait for each other (an event set by the last one, after
    /// a sleep) and pass values through a channel between Tasks.
    @Test(arguments: [1, 2])
    func noDeadlockWithEveryWorkerParkedInAwait(workers: Int) async throws {
        let sum = try await onRuntime(workers: workers) { () throws -> Int in
            let gate = GreenEvent()
            let relay = Channel<Int>()
            let n = 8
            var hs: [JoinHandle<Int>] = []
            for i in 0..<n {
                hs.append(go { () throws -> Int in
                    try GreenThread.await { () async throws -> Int in
                        try await gate.wait()
                        // Half the Tasks hand their index to the other half.
                        if i % 2 == 0 {
                            try await relay.send(i)
                            return 0
                        }
                        return try await relay.receive() ?? -1000
                    }
                })
            }
            hs.append(go { () throws -> Int in
                try GreenThread.await { () async throws -> Int in
                    try await Task.sleep(for: .milliseconds(20))
                    gate.set()
                    return 0
                }
            })
            return try joinAll(hs).reduce(0, +)
        }
        #expect(sum == (0..<8).filter { $0 % 2 == 0 }.reduce(0, +))
    }

    @Test func manyConcurrentAwaitsFinish() async throws {
        let count = 10_000
        let sum = try await onRuntime(workers: 2) { () throws -> Int in
            let hs = (0..<count).map { i in
                go { () throws -> Int in
                    try GreenThread.await { () async -> Int in
                        await Task.yield()
                        return i
                    }
                }
            }
            return try joinAll(hs).reduce(0, +)
        }
        #expect(sum == count * (count - 1) / 2)
    }

    @Test func bodyErrorIsRethrownAndValueReturned() async throws {
        try await onRuntime(workers: 1) { () throws in
            #expect(throws: AwaitBoom(code: 7)) {
                try GreenThread.await { () async throws -> Int in throw AwaitBoom(code: 7) }
            }
            #expect(try GreenThread.await { () async -> String in "done" } == "done")
        }
    }

    /// Cancelling the green thread cancels its Task; the Task's error comes
    /// back, and only once the body has finished.
    @Test func cancellingTheGreenThreadCancelsTheTask() async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let started = Atomic<Bool>(false)
        let taskSawCancel = Atomic<Bool>(false)
        let bodyFinished = Atomic<Bool>(false)
        let finishedBeforeReturn = Atomic<Bool>(false)
        let h = rt.spawn { () throws -> Int in
            do {
                return try GreenThread.await { () async throws -> Int in
                    defer { bodyFinished.store(true, ordering: .releasing) }
                    started.store(true, ordering: .releasing)
                    do {
                        try await Task.sleep(for: .seconds(3_600))
                    } catch {
                        taskSawCancel.store(Task.isCancelled, ordering: .releasing)
                        // Still running after the cancel: the green thread
                        // must not return before this body ends.
                        try? await Task.sleep(for: .milliseconds(20))
                        throw error
                    }
                    return 1
                }
            } catch {
                finishedBeforeReturn.store(bodyFinished.load(ordering: .acquiring), ordering: .releasing)
                throw error
            }
        }
        #expect(await eventuallyAsync { started.load(ordering: .acquiring) })
        let t0 = gt_now_ns()
        h.cancel()
        await #expect(throws: CancellationError.self) { try await h.value }
        // Uncancelled, the body would sleep an hour. The bound is loose
        // because the body needs a thread of the cooperative pool, which
        // other suites' synchronous tests may hold for a while.
        #expect(gt_now_ns() - t0 < 60_000_000_000)
        #expect(taskSawCancel.load(ordering: .acquiring) == true)
        #expect(finishedBeforeReturn.load(ordering: .acquiring) == true)
    }

    /// A green thread cancelled before it calls `await` still runs the body,
    /// in a Task that is cancelled at once, and gets its result.
    @Test func alreadyCancelledThreadRunsACancelledBody() async throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let go1 = GreenEvent()
        let h = rt.spawn { () throws -> Bool in
            try go1.wait()
            #expect(!GreenThread.isCancelled)
            return false
        }
        _ = h
        let seen = rt.spawn { () throws -> Bool in
            _ = eventuallyGreen { GreenThread.isCancelled }
            return try GreenThread.await { () async -> Bool in Task.isCancelled }
        }
        seen.cancel()
        #expect(try await seen.value == true)
        go1.set()
        #expect(try await h.value == false)
    }

    /// Cancelling the Task that awaits `handle.value` cancels the green
    /// thread, which sees it in its wait.
    @Test func cancellingTheTaskCancelsTheGreenThread() async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let never = GreenEvent()
        let waiting = Atomic<Bool>(false)
        let greenSawCancel = Atomic<Bool>(false)
        let h = rt.spawn { () throws -> Int in
            waiting.store(true, ordering: .releasing)
            do {
                try never.wait()
            } catch {
                greenSawCancel.store(error is CancellationError && GreenThread.isCancelled, ordering: .releasing)
                throw error
            }
            return 1
        }
        let task = Task { try await h.value }
        #expect(await eventuallyAsync { waiting.load(ordering: .acquiring) && never.waiterCount == 1 })
        let t0 = gt_now_ns()
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // Uncancelled, the green thread would wait forever (loose bound:
        // see the test above).
        #expect(gt_now_ns() - t0 < 60_000_000_000)
        #expect(greenSawCancel.load(ordering: .acquiring) == true)
        #expect(h.isFinished)
    }

    /// Off any runtime, `await` blocks the OS thread until the Task ends.
    @Test func awaitOnAPlainOSThread() {
        let got = Atomic<Int>(0)
        onAnotherThread {
            let v = try? GreenThread.await { () async throws -> Int in
                try await Task.sleep(for: .milliseconds(5))
                return 42
            }
            got.store(v ?? -1, ordering: .relaxed)
        }
        #expect(got.load(ordering: .relaxed) == 42)
        let code = Atomic<Int>(0)
        onAnotherThread {
            do {
                _ = try GreenThread.await { () async throws -> Int in throw AwaitBoom(code: 3) }
            } catch let e as AwaitBoom {
                code.store(e.code, ordering: .relaxed)
            } catch {}
        }
        #expect(code.load(ordering: .relaxed) == 3)
    }

    @Test func awaitInsideAPoolTaskNamesTheMisuse() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            await Task.detached {
                _ = try? GreenThread.await { () async -> Int in 1 }
            }.value
        }
        #expect(stderrText(result).contains("GreenThread.await called inside a Swift concurrency task"))
    }
}

// MARK: - Async code waiting on green things

@Suite("AsyncBridgeTests: async waits on green primitives", .serialized)
struct AsyncWaitTests {
    /// Several green producers, one async consumer through `values`: each
    /// value once, and the loop ends at close.
    @Test(arguments: [0, 4])
    func valuesDeliversEveryValueOnceAndEndsAtClose(capacity: Int) async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ch = Channel<Int>(capacity: capacity)
        let producers = 4, perProducer = 500
        rt.spawn { () throws in
            let hs = (0..<producers).map { p in
                go { () throws in
                    for k in 0..<perProducer { try ch.send(p * perProducer + k) }
                }
            }
            _ = try joinAll(hs)
            ch.close()
        }
        var got: [Int] = []
        for await v in ch.values { got.append(v) }
        #expect(deliveryProblems(got, total: producers * perProducer) == "")
        // Per-producer FIFO order.
        for p in 0..<producers {
            let mine = got.filter { $0 / perProducer == p }
            #expect(zip(mine, mine.dropFirst()).allSatisfy { $0 < $1 })
        }
    }

    /// An async producer and green consumers.
    @Test(arguments: [0, 3])
    func asyncProducerGreenConsumers(capacity: Int) async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ch = Channel<Int>(capacity: capacity)
        let total = 2_000
        let consumers = (0..<3).map { _ in
            rt.spawn { () -> [Int] in
                var mine: [Int] = []
                for v in ch { mine.append(v) }
                return mine
            }
        }
        for i in 0..<total { try await ch.send(i) }
        ch.close()
        await #expect(throws: ChannelError.closed) { try await ch.send(-1) }
        var all: [Int] = []
        for c in consumers { all += try await c.value }
        #expect(deliveryProblems(all, total: total) == "")
        // Closed and drained: nil at once.
        #expect(try await ch.receive() == nil)
    }

    /// Async receivers cancelled at random moments while green senders hand
    /// values over: every value reaches exactly one receiver.
    @Test func receiveCancellationRacingSendersLosesNothing() async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        for capacity in [0, 2] {
            let ch = Channel<Int>(capacity: capacity)
            let total = 3_000
            rt.spawn { () throws in
                let hs = (0..<2).map { s in
                    go { () throws in
                        for i in stride(from: s, to: total, by: 2) {
                            try ch.send(i)
                            if Int.random(in: 0..<4) == 0 { GreenThread.yield() }
                        }
                    }
                }
                _ = try joinAll(hs)
                ch.close()
            }
            let parts = try await withThrowingTaskGroup(of: ([Int], Int).self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var mine: [Int] = []
                        var cancelled = 0
                        while true {
                            let t = Task { try await ch.receive() }
                            if Bool.random() {
                                for _ in 0..<Int.random(in: 0..<3) { await Task.yield() }
                                t.cancel()
                            }
                            do {
                                guard let v = try await t.value else { break }
                                mine.append(v)
                            } catch is CancellationError {
                                cancelled += 1
                            }
                        }
                        return (mine, cancelled)
                    }
                }
                var all: [([Int], Int)] = []
                for try await part in group { all.append(part) }
                return all
            }
            let got = parts.flatMap { $0.0 }
            #expect(deliveryProblems(got, total: total) == "")
            #expect(parts.map { $0.1 }.reduce(0, +) > 0)
            #expect(ch.waiterCount == 0)
        }
    }

    /// Async senders cancelled at random moments: a send that threw was not
    /// delivered and is retried; each value arrives exactly once.
    @Test func sendCancellationRacingReceiversLosesNothing() async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ch = Channel<Int>()
        let total = 2_000
        let receivers = (0..<2).map { _ in
            rt.spawn { () -> [Int] in
                var mine: [Int] = []
                for v in ch {
                    mine.append(v)
                    if Int.random(in: 0..<4) == 0 { GreenThread.yield() }
                }
                return mine
            }
        }
        var retries = 0
        for i in 0..<total {
            while true {
                let t = Task { try await ch.send(i) }
                if Bool.random() {
                    for _ in 0..<Int.random(in: 0..<3) { await Task.yield() }
                    t.cancel()
                }
                do {
                    try await t.value
                    break
                } catch is CancellationError {
                    retries += 1
                }
            }
        }
        ch.close()
        var all: [Int] = []
        for r in receivers { all += try await r.value }
        #expect(deliveryProblems(all, total: total) == "")
        #expect(retries > 0)
        #expect(ch.waiterCount == 0)
    }

    /// A cancelled Task's `receive` that must wait throws at once and
    /// leaves no waiter behind; one that need not wait still returns.
    @Test func cancelledReceiveThrowsAndLeavesNoWaiter() async throws {
        let ch = Channel<Int>(capacity: 1)
        let t = Task { () async throws -> Int? in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ch.receive()
        }
        await #expect(throws: CancellationError.self) { try await t.value }
        #expect(ch.waiterCount == 0)
        #expect(ch.trySend(5))
        let t2 = Task { () async throws -> Int? in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ch.receive()
        }
        #expect(try await t2.value == 5)
    }

    @Test func waitGroupAndEventWaitFromAsyncCode() async throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let wg = WaitGroup()
        let ev = GreenEvent()
        let done = Atomic<Int>(0)
        wg.add(3)
        for _ in 0..<3 {
            rt.spawn { () throws in
                try ev.wait()
                done.add(1, ordering: .relaxed)
                wg.done()
            }
        }
        let evWaiter = Task { try await ev.wait(); return done.load(ordering: .relaxed) }
        #expect(wg.count == 3)
        ev.set()
        try await wg.wait()
        #expect(done.load(ordering: .relaxed) == 3)
        _ = try await evWaiter.value
        try await ev.wait()    // set already: returns at once
        try await wg.wait()    // zero already

        // Cancellation ends both waits and leaves no waiter queued.
        let ev2 = GreenEvent()
        let wg2 = WaitGroup()
        wg2.add(1)
        let a = Task { try await ev2.wait() }
        let b = Task { try await wg2.wait() }
        #expect(await eventuallyAsync { ev2.waiterCount == 1 })
        a.cancel()
        b.cancel()
        await #expect(throws: CancellationError.self) { try await a.value }
        await #expect(throws: CancellationError.self) { try await b.value }
        #expect(ev2.waiterCount == 0)
        wg2.done()
    }

    /// A select on a green thread meets an async receiver: the waiter of an
    /// async receive is served by the same code as a green one.
    @Test func selectServesAnAsyncReceiver() async throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let a = Channel<Int>(), b = Channel<Int>()
        let h = rt.spawn { () throws -> Int in
            var sent = 0
            while sent < 100 {
                let n = sent
                _ = try select {
                    Case.send(a, n) { 1 }
                    Case.send(b, -n - 1) { 1 }
                }
                sent += 1
            }
            a.close()
            b.close()
            return sent
        }
        var got = 0
        async let fromB: Int = { var n = 0; for await _ in b.values { n += 1 }; return n }()
        for await _ in a.values { got += 1 }
        got += await fromB
        #expect(got == 100)
        #expect(try await h.value == 100)
    }
}

/// `GreenThread.await` inside a deadline scope: the scope's deadline
/// cancels the Task, and the caller gets `DeadlineExceeded`.
@Suite("GreenThread.await in scopes")
struct GreenAwaitScopeTests {
    @Test func aDeadlineAroundAnAwaitCancelsTheTask() throws {
        let rt = Runtime(configuration: .init(workers: 1))
        defer { rt.shutdown() }
        let outcome = try rt.run { () throws -> String in
            do {
                _ = try withDeadline(after: .milliseconds(20)) {
                    try GreenThread.await { try await Task.sleep(for: .seconds(60)); return 1 }
                }
                return "returned"
            } catch {
                return "\(type(of: error))"
            }
        }
        #expect(outcome == "DeadlineExceeded")
    }
}
