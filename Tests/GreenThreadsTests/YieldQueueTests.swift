import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// The per-worker yield queue (Scheduler/YieldQueue.swift): yields are
/// cheaper because only the owner sees it, so these check that nothing
/// behind it is lost, starved or stranded.
/// A flag that catches two threads inside the same section at once.
final class AtomicFlag: Sendable {
    private let busy = Atomic<Bool>(false)
    func enter() -> Bool { !busy.exchange(true, ordering: .acquiring) }
    func leave() { busy.store(false, ordering: .releasing) }
}

@Suite("Yield queue", .serialized)
struct YieldQueueTests {
    /// A log that green threads on one worker append to (no two run at once).
    final class Log: @unchecked Sendable {
        private let lock = SpinLock()
        private var entries: [Int] = []
        func append(_ x: Int) { lock.withLock { entries.append(x) } }
        var all: [Int] { lock.withLock { entries } }
    }

    @Test func ringKeepsFIFOOrderAndReportsFull() {
        var q = YieldQueue()
        var pushed = 0
        for i in 1...YieldQueue.capacity where q.push(UInt(i)) { pushed += 1 }
        #expect(pushed == YieldQueue.capacity)
        let overflowed = !q.push(9999)
        let count = q.count
        #expect(overflowed)
        #expect(count == YieldQueue.capacity)
        var first: [UInt] = []
        for _ in 1...10 { if let x = q.take() { first.append(x) } }
        #expect(first == (1...10).map { UInt($0) })
        for i in 0..<10 { _ = q.push(UInt(10_000 + i)) }  // wraps around
        var seen: [UInt] = []
        q.forEach { seen.append($0) }
        let expected = (11...YieldQueue.capacity).map { UInt($0) } + (0..<10).map { UInt(10_000 + $0) }
        #expect(seen == expected)
        var taken: [UInt] = []
        while let x = q.take() { taken.append(x) }
        #expect(taken == seen)
        let empty = q.isEmpty && q.take() == nil
        #expect(empty)
    }

    @Test func yieldsRoundRobinOnOneWorker() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let log = Log()
        let n = 5, rounds = 200
        try rt.run {
            let hs = (0..<n).map { t in
                go {
                    for _ in 0..<rounds {
                        log.append(t)
                        GreenThread.yield()
                    }
                }
            }
            for h in hs { try h.join() }
        }
        let entries = log.all
        #expect(entries.count == n * rounds)
        // Every thread once per round, in the same order every round.
        #expect(Set(entries.prefix(n)).count == n)
        let periodic = (n..<entries.count).allSatisfy { entries[$0] == entries[$0 - n] }
        #expect(periodic, "not round robin: \(entries.prefix(4 * n))")
    }

    @Test func yieldersSpreadToAnIdleWorker() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        // Where each of two CPU-bound yielders is while it computes
        // (worker index + 1; 0 between chunks).
        final class Places: Sendable {
            let on0 = Atomic<Int>(0)
            let on1 = Atomic<Int>(0)
            let together = Atomic<Bool>(false)
            func set(_ t: Int, _ v: Int) { if t == 0 { on0.store(v, ordering: .relaxed) } else { on1.store(v, ordering: .relaxed) } }
            func get(_ t: Int) -> Int { t == 0 ? on0.load(ordering: .relaxed) : on1.load(ordering: .relaxed) }
        }
        let places = Places()
        try rt.run {
            let deadline = gt_now_ns() + 10_000_000_000
            let hs = (0..<2).map { t in
                go {
                    while !places.together.load(ordering: .relaxed) && gt_now_ns() < deadline {
                        let me = Worker.current!.index + 1
                        places.set(t, me)
                        let chunkEnd = gt_now_ns() + 20_000
                        while gt_now_ns() < chunkEnd {
                            let other = places.get(1 - t)
                            if other != 0 && other != me { places.together.store(true, ordering: .relaxed) }
                        }
                        places.set(t, 0)
                        GreenThread.yield()
                    }
                }
            }
            for h in hs { try h.join() }
        }
        let together = places.together.load(ordering: .relaxed)
        #expect(together, "two yielders never ran on both workers at once")
    }

    @Test func aYielderIsNotStarvedByADequeThatKeepsRefilling() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let stop = Atomic<Bool>(false)
        let links = Atomic<Int>(0)
        let maxLinks = 1_000_000
        // Each link spawns the next and ends, so the deque is never empty
        // and a plain deque-before-yield-queue order would never get back
        // to the yielder.
        @Sendable func link() {
            let n = links.add(1, ordering: .relaxed).newValue
            if stop.load(ordering: .relaxed) || n >= maxLinks { return }
            go { link() }
        }
        try rt.run {
            let yielder = go {
                for _ in 0..<100 { GreenThread.yield() }
                stop.store(true, ordering: .relaxed)
            }
            go { link() }
            try yielder.join()
        }
        let linked = links.load(ordering: .relaxed)
        #expect(linked < maxLinks, "the yielder waited for the whole chain")
    }

    @Test(arguments: [1, 2])
    func shutdownCancelsThreadsWaitingInTheYieldQueue(workers: Int) throws {
        let rt = Runtime(workers: workers)
        let started = Atomic<Int>(0)
        let n = 16
        let hs = (0..<n).map { _ in
            rt.spawn { () -> Int in
                started.add(1, ordering: .relaxed)
                var yields = 0
                while !GreenThread.isCancelled {
                    GreenThread.yield()
                    yields += 1
                }
                return yields
            }
        }
        let t0 = gt_now_ns()
        while started.load(ordering: .relaxed) < n && gt_now_ns() - t0 < 5_000_000_000 { usleep(1_000) }
        let running = started.load(ordering: .relaxed)
        #expect(running == n)
        rt.shutdown()
        #expect(rt.stats.live == 0)
        for h in hs { #expect(h.isFinished) }
    }

    @Test func cancelEndsAYieldLoop() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let total = try rt.run { () throws -> Int in
            let hs = (0..<4).map { _ in
                go { () -> Int in
                    var n = 0
                    while !GreenThread.isCancelled {
                        GreenThread.yield()
                        n += 1
                    }
                    return n
                }
            }
            for _ in 0..<1_000 { GreenThread.yield() }
            for h in hs { h.cancel() }
            return try joinAll(hs).reduce(0, +)
        }
        #expect(total > 0)
    }

    @Test(arguments: [1, 2])
    func deadlockAfterYieldsIsStillDetected(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        do {
            try rt.run {
                let ch = Channel<Int>(capacity: 0)
                let hs = (0..<3).map { _ in
                    go { () -> Int in
                        for _ in 0..<1_000 { GreenThread.yield() }
                        return try ch.receive() ?? 0
                    }
                }
                for h in hs { _ = try h.join() }
            }
            Issue.record("run returned although its green threads wait forever")
        } catch RuntimeError.deadlock(let report) {
            #expect(report.blocked.count == 4)
        }
    }

    /// One worker: a yielder queued behind a thread stuck in a raw blocking
    /// loop is visible to nobody but sysmon, which must move it out so that
    /// a replacement worker runs it. The stuck thread waits for the yielder,
    /// so without the rescue this takes the whole 3 s bound.
    @Test func aYielderBehindAStuckThreadIsRescued() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try expectTimely { () throws -> [TimingBound] in
            let started = Atomic<Bool>(false)
            let stuckRuns = Atomic<Bool>(false)
            let yielderDone = Atomic<Bool>(false)
            let waited = try rt.run { () throws -> Int64 in
                let yielder = go {
                    started.store(true, ordering: .relaxed)
                    while !stuckRuns.load(ordering: .acquiring) { GreenThread.yield() }
                    for _ in 0..<100 { GreenThread.yield() }
                    yielderDone.store(true, ordering: .releasing)
                }
                while !started.load(ordering: .relaxed) { GreenThread.yield() }
                let stuck = go { () -> Int64 in
                    let t0 = gt_now_ns()
                    stuckRuns.store(true, ordering: .releasing)
                    while !yielderDone.load(ordering: .acquiring) && gt_now_ns() - t0 < 3_000_000_000 { usleep(1_000) }
                    return gt_now_ns() - t0
                }
                let waited = try stuck.join()
                try yielder.join()
                return waited
            }
            // The stuck thread stops waiting after 3 s, done or not: a wait
            // below that means the yielder finished.
            return [.below("the yielder's wait behind the stuck thread", waited, 2_000_000_000,
                           loaded: 2_900_000_000)]
        }
        let rescues = rt.core.sysmon?.yieldRescues.load(ordering: .relaxed) ?? 0
        // Without membarrier(2) (filtered by a sandbox, say) yields use the
        // deque, which the replacement worker steals from: nothing to rescue.
        if rt.core.yieldQueues { #expect(rescues >= 1) } else { #expect(rescues == 0) }
    }

    /// Sysmon takes yield queues over while their owner keeps coming back:
    /// a thread blocks for a random time around the hand-off threshold,
    /// switches, blocks again. No yielder may run twice at once (a stale
    /// ring entry resumed beside the rescued one) or be lost.
    @Test func rescuesRacingTheOwnerNeverRunAYielderTwice() throws {
        final class Guards: Sendable {
            let inside = (0..<6).map { _ in AtomicFlag() }
            let doubleRuns = Atomic<Int>(0)
        }
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let guards = Guards()
        let stop = Atomic<Bool>(false)
        let n = guards.inside.count
        let counts = try rt.run { () throws -> [Int] in
            let yielders = (0..<n).map { t in
                go { () -> Int in
                    var done = 0
                    while !stop.load(ordering: .relaxed) {
                        if !guards.inside[t].enter() { guards.doubleRuns.add(1, ordering: .relaxed) }
                        done += 1
                        guards.inside[t].leave()
                        GreenThread.yield()
                    }
                    return done
                }
            }
            let stutter = go {
                var rng = FastRandom(seed: 0x5EED)
                for _ in 0..<12 {
                    usleep(UInt32(12_000 + rng.next(below: 20_000)))
                    for _ in 0..<(10 + rng.next(below: 20)) { GreenThread.yield() }
                }
                stop.store(true, ordering: .relaxed)
            }
            try stutter.join()
            return try joinAll(yielders)
        }
        let doubleRuns = guards.doubleRuns.load(ordering: .relaxed)
        let rescues = rt.core.sysmon?.yieldRescues.load(ordering: .relaxed) ?? 0
        #expect(counts.allSatisfy { $0 > 0 })
        #expect(doubleRuns == 0)
        // Without membarrier(2) (filtered by a sandbox, say) yields use the
        // deque, which the replacement worker steals from: nothing to rescue.
        if rt.core.yieldQueues { #expect(rescues >= 1) } else { #expect(rescues == 0) }
    }

    @Test func randomizedYieldsChannelsAndSleepsOnTwoWorkers() throws {
        for seed in 1...3 {
            let rt = Runtime(workers: 2)
            let n = 48, steps = 150
            let (total, expected) = try rt.run { () throws -> (Int, Int) in
                let channels = (0..<4).map { _ in Channel<Int>(capacity: 2) }
                // Every send has a receiver: thread t sends on channel t % 4
                // in its step s exactly when thread t ^ 1 receives on it in
                // the same step.
                var rng = FastRandom(seed: UInt64(seed) &* 0x9E37_79B9)
                let plans: [[Int]] = (0..<n / 2).map { _ in (0..<steps).map { _ in rng.next(below: 6) } }
                let hs = (0..<n).map { t in
                    go { () throws -> Int in
                        let plan = plans[t / 2]
                        let ch = channels[(t / 2) % channels.count]
                        var sum = 0
                        for s in 0..<steps {
                            switch plan[s] {
                            case 0, 1: GreenThread.yield()
                            case 2:
                                if t % 2 == 0 { try ch.send(s) } else { sum += try ch.receive() ?? -1_000_000 }
                            case 3: try GreenThread.sleep(for: .microseconds(50 + s % 100))
                            case 4: for _ in 0..<3 { GreenThread.yield() }
                            default: _ = spin(UInt64(s), iterations: 500)
                            }
                        }
                        return sum
                    }
                }
                let total = try joinAll(hs).reduce(0, +)
                let expected = plans.reduce(0) { acc, plan in
                    acc + plan.indices.reduce(0) { $0 + (plan[$1] == 2 ? $1 : 0) }
                }
                return (total, expected)
            }
            rt.shutdown()
            #expect(total == expected, "seed \(seed)")
            #expect(rt.stats.live == 0)
        }
    }
}
