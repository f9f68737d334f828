import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// A ticking green thread next to one stuck in a raw, unannounced blocking
/// `usleep` loop (20 × 10 ms). Returns how often the ticker ticked while the
/// blocker blocked.
private func ticksDuringBlockingLoop(_ rt: Runtime, tickerStops: Bool = false) throws -> Int {
    try rt.run { () throws -> Int in
        let ticks = Atomic<Int>(0)
        let blockerDone = Atomic<Bool>(false)
        let ticker = go {
            var n = 0
            while !blockerDone.load(ordering: .acquiring) && !(tickerStops && n >= 30) {
                ticks.add(1, ordering: .relaxed)
                n += 1
                try GreenThread.sleep(for: .milliseconds(1))
            }
        }
        try GreenThread.sleep(for: .milliseconds(3))  // the ticker is under way
        let blocker = go { () -> Int in
            let before = ticks.load(ordering: .relaxed)
            for _ in 0..<20 { usleep(10_000) }
            let during = ticks.load(ordering: .relaxed) - before
            blockerDone.store(true, ordering: .releasing)
            return during
        }
        let during = try blocker.join()
        try ticker.join()
        return during
    }
}

@Suite("Sysmon and hand-off", .serialized)
struct SysmonTests {
    @Test func rawBlockingLoopDoesNotStarveATicker() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        // 200 ms blocked, hand-off after ~20 ms, then a tick per ~1 ms.
        try expectTimely {
            [.atLeast("ticks in the 200 ms the worker blocked", try ticksDuringBlockingLoop(rt), 20)]
        }
        #expect(rt.stats.handoffs >= 1)
        // The stuck worker is back: its replacement retires.
        #expect(eventually { rt.stats.replacementWorkers == 0 }, "\(rt.stats)")
    }

    @Test func withoutHandoffTheTickerStarves() throws {
        // The control for the test above: same program, sysmon off.
        let rt = Runtime(configuration: .init(workers: 1, preemptionThreshold: nil, handoffThreshold: nil))
        defer { rt.shutdown() }
        #expect(try ticksDuringBlockingLoop(rt) == 0)
        #expect(rt.stats.handoffs == 0)
    }

    @Test func handoffRepeatsAfterTheReplacementRetired() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        for round in 0..<2 {
            try expectTimely {
                [.atLeast("round \(round): ticks while the worker blocked", try ticksDuringBlockingLoop(rt), 20)]
            }
            #expect(eventually { rt.stats.replacementWorkers == 0 }, "\(rt.stats)")
        }
        #expect(rt.stats.handoffs >= 2)
    }

    @Test func checkpointLetsAnotherThreadRunOnOneWorker() throws {
        // No hand-off: only the preemption request can let `other` run.
        let rt = Runtime(configuration: .init(workers: 1, handoffThreshold: nil))
        defer { rt.shutdown() }
        let log = TestLog<String>()
        let otherRan = Atomic<Bool>(false)
        let spun = try rt.run { () throws -> Int in
            let other = go {
                try GreenThread.sleep(for: .milliseconds(2))
                log.append("other")
                otherRan.store(true, ordering: .releasing)
            }
            let spinner = go { () -> Int in
                log.append("spinner starts")
                let giveUp = gt_now_ns() + 5_000_000_000
                var n = 0
                while !otherRan.load(ordering: .acquiring) && gt_now_ns() < giveUp {
                    n += 1
                    GreenThread.checkpoint()
                }
                log.append("spinner ends")
                return n
            }
            try other.join()
            return try spinner.join()
        }
        #expect(log.values == ["spinner starts", "other", "spinner ends"])
        #expect(spun > 0)
        #expect(rt.stats.preemptionRequests >= 1)
        #expect(rt.stats.handoffs == 0)
    }

    @Test func checkpointLoopsShareOneWorker() throws {
        // Two CPU-bound loops with checkpoints take turns.
        let rt = Runtime(configuration: .init(workers: 1, handoffThreshold: nil))
        defer { rt.shutdown() }
        let log = TestLog<Int>()
        @Sendable func switches(_ values: [Int]) -> Int { zip(values, values.dropFirst()).filter { $0 != $1 }.count }
        try rt.run {
            let hs = (0..<2).map { id in
                go {
                    // Until both have taken turns twice, not for a fixed time:
                    // on a loaded machine the worker (or sysmon) may be off
                    // the CPU for most of any short window. 10 s is only the
                    // bound that turns "never preempted" into a failure.
                    let end = gt_now_ns() + 10_000_000_000
                    var last = -1
                    while gt_now_ns() < end {
                        GreenThread.checkpoint()
                        // Log each stretch once: a new entry after a switch.
                        let values = log.values
                        if last != values.count { log.append(id); last = values.count + 1 }
                        if switches(values) >= 4 { break }
                    }
                }
            }
            _ = try joinAll(hs)
        }
        // Both ran before either finished: the log alternates both ways, twice.
        let values = log.values
        #expect(switches(values) >= 4, "\(values)")
    }

    @Test func checkpointOnAPlainThreadDoesNothing() {
        GreenThread.checkpoint()
        #expect(GreenThread.current == nil)
    }

    @Test func quietWhenNothingElseIsRunnable() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        // A blocking call with nothing else to run: no preemption request,
        // no replacement worker.
        _ = try rt.run { usleep(60_000) }
        #expect(rt.stats.handoffs == 0)
        #expect(rt.stats.preemptionRequests == 0)
    }

    @Test func sysmonParksWhenIdleAndWakesForWork() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let bell = rt.core.idle.sysmonBell
        #expect(eventually(seconds: 3) { bell.asleep.load(ordering: .relaxed) }, "sysmon never parked")
        // Parked: a stuck worker must still be noticed (the bell woke it).
        try expectTimely {
            [.atLeast("ticks while the worker blocked", try ticksDuringBlockingLoop(rt), 20)]
        }
    }

    @Test func noFalseDeadlockWhileAWorkerIsStuck() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        // The ticker stops early; then the replacement sleeps with nothing
        // to do while the stuck worker still blocks. Counting the sleeper
        // against the configured worker count would call that a deadlock.
        let during = try ticksDuringBlockingLoop(rt, tickerStops: true)
        #expect(during >= 1)
        #expect(rt.stats.handoffs >= 1)
    }

    @Test func deadlockIsStillDetectedAfterAHandoff() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        _ = try ticksDuringBlockingLoop(rt)
        #expect(eventually { rt.stats.replacementWorkers == 0 })
        do {
            try rt.run {
                let h = go { () -> Int in try Channel<Int>(capacity: 0).receive() ?? 0 }
                _ = try h.join()
            }
            Issue.record("run returned although its green threads wait forever")
        } catch RuntimeError.deadlock(let report) {
            #expect(report.blocked.count == 2)
        }
    }

    @Test(arguments: [1, 2])
    func deadlockIsDetectedWhenTheWaiterArrivesLate(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        // Every worker is asleep, without watching, before anyone waits on
        // the runtime: the join itself must start the deadlock check.
        let h = rt.spawn { () -> Int in try Channel<Int>(capacity: 0).receive() ?? 0 }
        usleep(50_000)
        #expect(throws: RuntimeError.self) { _ = try h.join() }
    }

    @Test func shutdownCompletesWithAStuckWorker() {
        expectTimely { () -> [TimingBound] in
            let rt = Runtime(configuration: .init(workers: 1, shutdownGracePeriod: .milliseconds(100)))
            let release = Atomic<Bool>(false)
            let ticks = Atomic<Int>(0)
            rt.spawn { while !release.load(ordering: .acquiring) { usleep(1_000) } }
            rt.spawn {
                while !GreenThread.isCancelled {
                    ticks.add(1, ordering: .relaxed)
                    try GreenThread.sleep(for: .milliseconds(1))
                }
            }
            #expect(eventually { ticks.load(ordering: .relaxed) >= 10 }, "the ticker never ran")
            #expect(rt.stats.handoffs >= 1)
            let t0 = gt_now_ns()
            rt.shutdown()
            let shutdownTook = gt_now_ns() - t0
            // The unjoined worker may still touch any stack or pool (it is
            // about to finish its thread and recycle the stack): nothing was
            // unmapped.
            #expect(rt.stats.stacksMapped >= 2, "stacks were unmapped under a worker that was not joined")
            // Let the stuck thread finish on its (now stopping) worker.
            release.store(true, ordering: .releasing)
            usleep(20_000)
            withExtendedLifetime(rt) {}
            return [.below("shutdown beside a stuck worker", shutdownTook, 2_000_000_000)]
        }
    }

    @Test func aThreadWokenIntoTheStuckWorkersRunNextSlotStillRuns() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let blockerDone = Atomic<Bool>(false)
        let ranWhileBlocked = try rt.run { () throws -> Bool in
            let ch = Channel<Int>(capacity: 0)
            let receiver = go { () -> Bool in
                _ = try ch.receive()
                return !blockerDone.load(ordering: .acquiring)
            }
            try GreenThread.sleep(for: .milliseconds(2))  // the receiver is parked
            let blocker = go {
                // The send wakes the receiver into this worker's run-next
                // slot, and then this worker blocks: only a replacement that
                // steals the slot can run it.
                try ch.send(1)
                for _ in 0..<10 { usleep(10_000) }
                blockerDone.store(true, ordering: .releasing)
            }
            try blocker.join()
            return try receiver.join()
        }
        #expect(ranWhileBlocked)
        #expect(rt.stats.handoffs >= 1)
    }

    @Test func aStuckReplacementIsReplacedToo() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try expectTimely { () throws -> [TimingBound] in
            let ticks = Atomic<Int>(0)
            let stop = Atomic<Bool>(false)
            let during = try rt.run { () throws -> Int in
                let ticker = go {
                    while !stop.load(ordering: .acquiring) {
                        ticks.add(1, ordering: .relaxed)
                        try GreenThread.sleep(for: .milliseconds(1))
                    }
                }
                try GreenThread.sleep(for: .milliseconds(3))
                // Two blockers in a row: the second lands on the first one's
                // replacement and blocks it too.
                let blockers = (0..<2).map { i in
                    go {
                        if i == 1 { try GreenThread.sleep(for: .milliseconds(40)) }
                        // 300 ms each: the ticks counted after 80 ms then
                        // span ~250 ms.
                        for _ in 0..<30 { usleep(10_000) }
                    }
                }
                try GreenThread.sleep(for: .milliseconds(80))
                let before = ticks.load(ordering: .relaxed)
                _ = try joinAll(blockers)
                let during = ticks.load(ordering: .relaxed) - before
                stop.store(true, ordering: .releasing)
                try ticker.join()
                return during
            }
            return [.atLeast("ticks while both workers blocked", during, 20)]
        }
        #expect(rt.stats.handoffs >= 2, "\(rt.stats)")
        #expect(eventually { rt.stats.replacementWorkers == 0 }, "\(rt.stats)")
    }

    @Test(arguments: [1, 2])
    func stuckThreadsAmongBusyOnesKeepCountsExact(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let done = Atomic<Int>(0)
        let total = try rt.run { () throws -> Int in
            // Blockers that hold their worker, among channel traffic and sleepers.
            let blockers = (0..<3).map { i in
                go { () -> Int in
                    for _ in 0..<5 { usleep(useconds_t(5_000 + 2_000 * i)) }
                    done.add(1, ordering: .relaxed)
                    return 1
                }
            }
            let ch = Channel<Int>(capacity: 4)
            let producer = go { () throws -> Int in
                for i in 0..<2_000 {
                    try ch.send(i)
                    if i % 100 == 0 { try GreenThread.sleep(for: .microseconds(300)) }
                }
                ch.close()
                return 0
            }
            let consumer = go { () -> Int in ch.reduce(0, +) }
            let sleepers = (0..<50).map { i in
                go { () -> Int in
                    try GreenThread.sleep(for: .milliseconds(i % 7))
                    return i
                }
            }
            return try joinAll(blockers).reduce(0, +) + producer.join() + consumer.join()
                + joinAll(sleepers).reduce(0, +)
        }
        #expect(total == 3 + (0..<2_000).reduce(0, +) + (0..<50).reduce(0, +))
        #expect(done.load(ordering: .relaxed) == 3)
        #expect(eventually { rt.stats.replacementWorkers == 0 }, "\(rt.stats)")
        rt.shutdown()
        #expect(rt.stats.live == 0)
    }

    /// A Task that keeps re-enqueueing itself runs on the replacement while
    /// the only worker blocks, so its next slice sits in the replacement's
    /// own job queue when sysmon retires it. The slice must reach a worker
    /// that runs it: left in the dormant replacement's queue, it was work
    /// the lone worker saw at every park but never took (a busy loop at
    /// full CPU, the Task stuck for good).
    @Test func jobsQueuedOnARetiringReplacementStillRun() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let steps = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let ended = Atomic<Bool>(false)
        Task(executorPreference: rt.taskExecutor) {
            while !stop.load(ordering: .acquiring) {
                steps.add(1, ordering: .relaxed)
                await Task.yield()
            }
            ended.store(true, ordering: .releasing)
        }
        for round in 0..<3 {
            try rt.run {
                try GreenThread.sleep(for: .milliseconds(2))
                let blocker = go { for _ in 0..<8 { usleep(10_000) } }
                try blocker.join()
            }
            #expect(eventually { rt.stats.replacementWorkers == 0 }, "round \(round): \(rt.stats)")
            let before = steps.load(ordering: .relaxed)
            #expect(eventually { steps.load(ordering: .relaxed) > before + 100 },
                    "round \(round): the Task stopped after the replacement retired")
        }
        #expect(rt.stats.handoffs >= 3, "\(rt.stats)")
        stop.store(true, ordering: .releasing)
        // Its last slice runs on the runtime too. (Checked here, not by
        // awaiting the Task from another one: that one would need a thread
        // of Swift's shared pool, which the tests running beside this one
        // may all be holding.)
        #expect(eventually { ended.load(ordering: .acquiring) })
    }
}
