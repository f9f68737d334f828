import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Two green threads yielding to each other take the cheapest switch there
/// is; that path must still leave room for everything else that is ready:
/// other local threads, work injected from outside, other workers.
@Suite("Yield fairness", .serialized)
struct YieldFairnessTests {
    final class Flags: Sendable {
        let stop = Atomic<Bool>(false)
        let yields = Atomic<Int>(0)
    }

    /// Bound on each yielder's loop, so a starved test fails instead of hanging.
    static let maxYields = 2_000_000

    /// Yields until `flags.stop`, or `maxYields` times; returns the count.
    static func yieldUntilStopped(_ flags: Flags) -> Int {
        var n = 0
        while !flags.stop.load(ordering: .relaxed) && n < maxYields {
            GreenThread.yield()
            n += 1
            flags.yields.add(1, ordering: .relaxed)
        }
        return n
    }

    @Test func yieldingPairDoesNotStarveAThirdLocalThread() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let flags = Flags()
        let counts = try rt.run { () throws -> [Int] in
            let pair = (0..<2).map { _ in go { Self.yieldUntilStopped(flags) } }
            // Let the pair get going, then make a third thread ready.
            while flags.yields.load(ordering: .relaxed) < 100 { GreenThread.yield() }
            let third = go { flags.stop.store(true, ordering: .relaxed) }
            try third.join()
            return try joinAll(pair)
        }
        // Round robin: the third thread runs after a few yields, not after
        // the pair gives up.
        #expect(counts.allSatisfy { $0 < 10_000 })
    }

    @Test func yieldingPairDoesNotStarveInjectedWork() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let flags = Flags()
        // Spawned from this plain thread: the pair and, later, the stopper
        // all arrive through the injection queue.
        let pair = (0..<2).map { _ in rt.spawn { Self.yieldUntilStopped(flags) } }
        let t0 = gt_now_ns()
        while flags.yields.load(ordering: .relaxed) < 1_000 && gt_now_ns() - t0 < 5_000_000_000 { sched_yield() }
        #expect(flags.yields.load(ordering: .relaxed) >= 1_000)
        let stopper = rt.spawn { flags.stop.store(true, ordering: .relaxed) }
        try stopper.join()
        let counts = try pair.map { try $0.join() }
        // The worker serves its injection queue every `injectorTick` picks,
        // so the stopper runs soon after it arrives (the count also covers
        // however long this thread took to spawn it: only the bound is sure).
        #expect(counts.allSatisfy { $0 < Self.maxYields })
    }

    @Test func randomizedYieldsAndStealsKeepCountsExact() throws {
        // Randomized: threads yield, spin and spawn on two workers, so the
        // idle one steals yielders from the busy one mid-loop. Every thread
        // finishes with its exact count. (Whether a steal happens in a given
        // run depends on the OS scheduler; MigrationTests insists on moves.)
        for seed in 1...4 {
            let rt = Runtime(workers: 2)
            let total = try rt.run { () throws -> Int in
                var rng = FastRandom(seed: UInt64(seed) &* 0x9E37_79B9)
                let hs = (0..<64).map { i in
                    let steps = 50 + rng.next(below: 200)
                    let childSeed = UInt64(rng.next())
                    return go { () throws -> Int in
                        var r = FastRandom(seed: childSeed)
                        var done = 0
                        for _ in 0..<steps {
                            GreenThread.yield()
                            switch r.next(below: 8) {
                            case 0: _ = spin(UInt64(i), iterations: 2_000)
                            case 1:
                                let d = done
                                if try go({ d }).join() != d { return -1 }
                            default: break
                            }
                            done += 1
                        }
                        return done
                    }
                }
                return try joinAll(hs).reduce(0, +)
            }
            rt.shutdown()
            var expected = 0
            var rng = FastRandom(seed: UInt64(seed) &* 0x9E37_79B9)
            for _ in 0..<64 {
                expected += 50 + rng.next(below: 200)
                _ = rng.next()
            }
            #expect(total == expected)
            #expect(rt.stats.live == 0)
        }
    }
}
