import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// A joiner is recorded unretained (TypedFiber's `joiner`): one whose wait
/// ends some other way must take itself out before the thread it joined
/// finishes and wakes it. These rounds race the two endings.
@Suite("Join races", .serialized)
struct JoinRaceTests {
    static func spin(_ yields: Int) {
        for _ in 0..<yields { GreenThread.yield() }
    }

    /// Several joiners per thread, some cancelled while the thread ends:
    /// every joiner gets the value or CancellationError, never a wake
    /// meant for a wait it left. Joiners return a String, so their fibers
    /// are freed (not cached) once their handles go.
    @Test(arguments: [1, 2])
    func cancelledJoinersRaceTheEnd(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let outcomes = try rt.run { () throws -> (values: Int, cancels: Int) in
            var values = 0
            var cancels = 0
            for round in 0..<2_000 {
                // Seeded per round, so a failing schedule can be replayed.
                var rng = FiberReuseTests.Choices(state: UInt64(round) &* 0x9E37_79B9_7F4A_7C15 | 1)
                let work = rng.next(4)
                let target = go { () -> Int in
                    JoinRaceTests.spin(work)
                    return round
                }
                let joiners = (0..<(1 + rng.next(4))).map { _ in
                    let delay = rng.next(3)
                    return go { () throws -> String in
                        JoinRaceTests.spin(delay)
                        return String(try target.join())
                    }
                }
                var cancelled: [Bool] = []
                for j in joiners {
                    JoinRaceTests.spin(rng.next(3))
                    let cancel = rng.next(2) == 0
                    if cancel { j.cancel() }
                    cancelled.append(cancel)
                }
                for (j, wasCancelled) in zip(joiners, cancelled) {
                    do {
                        #expect(try j.join() == String(round))
                        values += 1
                    } catch is CancellationError {
                        #expect(wasCancelled)
                        cancels += 1
                    }
                }
                #expect(try target.join() == round)
            }
            return (values, cancels)
        }
        // Both endings happened, so both paths were raced.
        #expect(outcomes.values > 0)
        #expect(outcomes.cancels > 0)
    }

    /// Plain OS threads join beside green ones (a ThreadWaiter in the same
    /// joiner list); the thread's end wakes each exactly once.
    @Test func threadsAndGreenThreadsJoinTogether() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        for round in 0..<200 {
            let gate = Atomic<Int>(0)
            let target = rt.spawn { () -> Int in
                while gate.load(ordering: .acquiring) == 0 { GreenThread.yield() }
                return round * 3
            }
            let greens = (0..<3).map { _ in rt.spawn { try target.join() } }
            let seen = Atomic<Int>(0)
            let threads = (0..<2).map { _ in
                startThread {
                    if (try? target.join()) == round * 3 { seen.add(1, ordering: .relaxed) }
                }
            }
            gate.store(1, ordering: .releasing)
            #expect(try joinAll(greens) == [round * 3, round * 3, round * 3])
            for t in threads { joinThread(t) }
            #expect(seen.load(ordering: .relaxed) == 2)
        }
    }
}
