import CContext
import Synchronization
import Testing
@testable import GreenThreads

// Tests of `Runtime.taskExecutor`: Task bodies run on the runtime's workers
// and interleave with its green threads, many Tasks finish, cancellation
// reaches a Task suspended on a green primitive, deadlock detection is not
// fooled by a runtime that only runs jobs, and shutdown with Tasks still
// pending neither hangs nor loses them.

/// Whether the caller runs on one of `rt`'s workers (its OS thread, not
/// necessarily inside a green thread).
private func onWorker(of rt: Runtime) -> Bool {
    Worker.current.map { $0.taskExecutor === rt.taskExecutor } ?? false
}

/// What the Tasks of a test leave behind.
private final class Tally: Sendable {
    let ran = Atomic<Int>(0)
    let offWorker = Atomic<Int>(0)
}

@Suite("TaskExecutorTests", .serialized)
struct TaskExecutorTests {
    /// Every slice of the Task (before and after each suspension, also one
    /// resumed from Swift's clock) runs on a worker, outside any green thread.
    @Test(arguments: [1, 2])
    func taskBodiesRunOnTheWorkers(workers: Int) async throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let slices = try await Task(executorPreference: rt.taskExecutor) { () async throws -> [Bool] in
            var seen = [onWorker(of: rt) && GreenThread.current == nil]
            await Task.yield()
            seen.append(onWorker(of: rt))
            try await Task.sleep(for: .milliseconds(2))
            seen.append(onWorker(of: rt))
            // A child task inherits the preference (an unstructured Task
            // does not: Swift's rule).
            async let child = onWorker(of: rt)
            seen.append(await child)
            return seen
        }.value
        #expect(slices == [true, true, true, true])
        // `withTaskExecutorPreference` too.
        let inScope = await withTaskExecutorPreference(rt.taskExecutor) {
            await Task.yield()
            return onWorker(of: rt)
        }
        #expect(inScope)
        #expect(!onWorker(of: rt))
    }

    /// With one worker, a Task and a green thread bounce a value through two
    /// unbuffered channels: each hand-off needs the other side to run on
    /// the same OS thread in between.
    @Test func interleavesWithGreenThreadsOnOneWorker() async throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let ping = Channel<Int>(), pong = Channel<Int>()
        let rounds = 2_000
        let echo = rt.spawn { () throws -> Int in
            var threads = Set<UInt>()
            for v in ping {
                threads.insert(UInt(bitPattern: gt_current_worker()))
                try pong.send(v &* 2)
            }
            return threads.count
        }
        let (sum, taskThreads) = try await Task(executorPreference: rt.taskExecutor) { () async throws -> (Int, Set<UInt>) in
            var sum = 0
            var threads = Set<UInt>()
            for i in 0..<rounds {
                try await ping.send(i)
                sum &+= try await pong.receive() ?? -1_000_000
                threads.insert(UInt(bitPattern: gt_current_worker()))
            }
            ping.close()
            return (sum, threads)
        }.value
        #expect(sum == rounds * (rounds - 1))
        #expect(try await echo.value == 1)
        #expect(taskThreads.count == 1 && !taskThreads.contains(0))
    }

    /// `GreenThread.await` on a green thread runs its body on the runtime's
    /// own workers; on a plain OS thread, on the default executor.
    @Test func greenAwaitRunsItsBodyOnTheWorkers() async throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let (callerWorker, bodyWorker) = try await rt.spawn { () throws -> (UInt, UInt) in
            let caller = UInt(bitPattern: gt_current_worker())
            let body = try GreenThread.await { () async -> UInt in
                await Task.yield()
                return UInt(bitPattern: gt_current_worker())
            }
            return (caller, body)
        }.value
        #expect(callerWorker != 0 && bodyWorker == callerWorker)
        // A thread of the blocking pool is a plain OS thread.
        let offRuntime = try await rt.spawn { () throws -> Bool in
            try GreenThread.blocking { try GreenThread.await { onWorker(of: rt) } }
        }.value
        #expect(!offRuntime)
    }

    /// 10^4 Tasks, started from outside and from a green thread, all finish,
    /// each on one of the runtime's workers.
    @Test(arguments: [1, 2])
    func manyTasksFinish(workers: Int) async throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let n = 10_000
        let tally = Tally()
        let outside = (0..<n / 2).map { i in
            Task(executorPreference: rt.taskExecutor) { () async -> Int in
                if i % 7 == 0 { await Task.yield() }
                tally.ran.add(1, ordering: .relaxed)
                if !onWorker(of: rt) { tally.offWorker.add(1, ordering: .relaxed) }
                return i
            }
        }
        // From a green thread: queued on its own worker.
        let done = Channel<Int>(capacity: n / 2)
        let executor = rt.taskExecutor
        try await rt.spawn { () throws in
            for i in 0..<n / 2 {
                Task(executorPreference: executor) {
                    tally.ran.add(1, ordering: .relaxed)
                    if !onWorker(of: rt) { tally.offWorker.add(1, ordering: .relaxed) }
                    try await done.send(i)
                }
            }
        }.value
        var sum = 0
        for t in outside { sum &+= await t.value }
        for _ in 0..<n / 2 { sum &+= try await done.receive() ?? -1_000_000 }
        #expect(sum == 2 * ((n / 2) * (n / 2 - 1) / 2))
        #expect(tally.ran.load(ordering: .relaxed) == n)
        #expect(tally.offWorker.load(ordering: .relaxed) == 0)
    }

    /// A Task on the executor, suspended on a channel no one sends to, ends
    /// with `CancellationError` when cancelled; the value sent afterwards
    /// goes to the next receiver, not to the cancelled one.
    @Test func cancellationReachesASuspendedTask() async throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ch = Channel<Int>()
        let started = Tally()
        let task = Task(executorPreference: rt.taskExecutor) { () async throws -> Int? in
            started.ran.store(1, ordering: .releasing)
            return try await ch.receive()
        }
        #expect(await eventuallyAsync { started.ran.load(ordering: .acquiring) == 1 })
        try await Task.sleep(for: .milliseconds(5))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // Cancelled before it starts: sees it at its first check.
        let early = Task(executorPreference: rt.taskExecutor) { () async -> Bool in
            withUnsafeCurrentTask { $0?.cancel() }
            await Task.yield()
            return Task.isCancelled
        }
        #expect(await early.value)
        // The channel still works for a receiver that is not cancelled.
        let receiver = Task(executorPreference: rt.taskExecutor) { try await ch.receive() }
        try await ch.send(7)
        #expect(try await receiver.value == 7)
    }

    /// An OS thread waits in `run` for a green thread that only a Task on
    /// the executor will wake, after running jobs for longer than the
    /// deadlock confirmation delay: a queued or running job is activity,
    /// and no deadlock is reported. (A Task suspended on something outside
    /// the runtime, such as a sleep on Swift's clock, is not visible: see
    /// TaskExecutor.swift.)
    @Test(arguments: [1, 2])
    func noDeadlockReportWhileOnlyJobsRun(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let executor = rt.taskExecutor
        let got = try rt.run { () throws -> Int in
            let ch = Channel<Int>()
            Task(executorPreference: executor) {
                let start = gt_now_ns()
                while gt_now_ns() - start < 3 * RuntimeCore.deadlockConfirmNanos { await Task.yield() }
                try await ch.send(42)
            }
            return try ch.receive() ?? -1
        }
        #expect(got == 42)
        #expect(rt.core.deadlockReport == nil)
    }

    /// Shutting down with Tasks still queued and suspended neither hangs
    /// nor crashes, and loses none of them: the queued ones, those resumed
    /// later and those started later finish on the global executor.
    @Test func shutdownWithPendingTasks() async throws {
        let rt = Runtime(workers: 2)
        let executor = rt.taskExecutor
        let ch = Channel<Int>()
        let spinning = (0..<64).map { i in
            Task(executorPreference: executor) { () async -> Int in
                for _ in 0..<1_000 { await Task.yield() }
                return i
            }
        }
        let waiting = (0..<16).map { _ in
            Task(executorPreference: executor) { () async throws -> Int? in try await ch.receive() }
        }
        try await Task.sleep(for: .milliseconds(2))
        rt.shutdown()
        var sum = 0
        for t in spinning { sum &+= await t.value }
        #expect(sum == 64 * 63 / 2)
        for t in waiting { t.cancel() }
        for t in waiting {
            await #expect(throws: CancellationError.self) { try await t.value }
        }
        // Started after shutdown: runs (elsewhere), and off the workers.
        let late = await Task(executorPreference: executor) { onWorker(of: rt) }.value
        #expect(!late)
    }
}
