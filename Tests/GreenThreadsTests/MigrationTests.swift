import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// Swift's exclusivity checker keeps a per-thread list of open `inout`
/// accesses. A green thread that yields inside `f(&object.field)` and
/// resumes on another worker must take its open access along, or the
/// runtime crashes in swift_endAccess. These tests force such migrations.
@Suite("Migration", .serialized)
struct MigrationTests {
    final class Holder: @unchecked Sendable {
        var values: [Int] = []
        var moves = 0
    }

    /// Holds a dynamic exclusive access to `values` across every yield.
    static func appendYielding(_ values: inout [Int], steps: Int, holder: Holder) {
        var last = Worker.current!.index
        for i in 0..<steps {
            values.append(i)
            // Mostly yields; now and then a short sleep, whose timer may be
            // fired (and the thread woken) by the other worker.
            if i % 8 == 7 { _ = try? GreenThread.sleep(for: .microseconds(20)) } else { GreenThread.yield() }
            // Some real work so the other worker has time to steal.
            _ = spin(UInt64(i), iterations: 200)
            let now = Worker.current!.index
            if now != last { holder.moves += 1 }
            last = now
        }
    }

    @Test func inoutAccessSurvivesMigration() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        // Migration is up to the scheduler; repeat until some happened (in
        // practice the first round), checking every round's results.
        var moves = 0
        for _ in 0..<10 where moves == 0 {
            let (counts, roundMoves) = try rt.run { () throws -> ([Int], Int) in
                let hs = (0..<400).map { _ in
                    go { () -> (Int, Int) in
                        let h = Holder()
                        Self.appendYielding(&h.values, steps: 40, holder: h)
                        return (h.values.count, h.moves)
                    }
                }
                let results = try joinAll(hs)
                return (results.map(\.0), results.map(\.1).reduce(0, +))
            }
            #expect(counts.allSatisfy { $0 == 40 })
            moves += roundMoves
        }
        // The test only proves something if threads really moved.
        #expect(moves > 0)
    }

    @Test func sleepInsideAccessResumesElsewhere() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let total = try rt.run { () throws -> Int in
            let hs = (0..<200).map { i in
                go { () -> Int in
                    let h = Holder()
                    Self.mutateSleeping(&h.values, seed: i)
                    return h.values.reduce(0, +)
                }
            }
            return try joinAll(hs).reduce(0, +)
        }
        #expect(total == 200 * (0..<10).reduce(0, +))
    }

    /// Workers locate their thread's access set (so a switch can skip the
    /// runtime's exit hook when nothing is open): the switch must see an
    /// access that is open, on whichever worker the thread runs, and see
    /// none once it ended. A failed lookup would show as "always open".
    @Test func switchSeesOpenAccessesOnEveryWorker() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        // Shared holders: the optimizer may check accesses to an object that
        // never escapes statically, and then no access would be open.
        let holders = (0..<64).map { _ in Holder() }
        let results = try rt.run { () throws -> [[Bool]] in
            let hs = holders.map { h in
                go { () -> [Bool] in
                    var seen: [Bool] = []
                    for _ in 0..<20 {
                        seen.append(!gt_exclusivity_thread_has_accesses())
                        Self.checkOpenAcrossYield(&h.values, seen: &seen)
                        GreenThread.yield()
                    }
                    seen.append(!gt_exclusivity_thread_has_accesses())
                    return seen
                }
            }
            return try joinAll(hs)
        }
        #expect(results.allSatisfy { $0.count == 41 && $0.allSatisfy { $0 } })
    }

    /// Records that the access to `values` is visible before and after a
    /// yield inside it (the yield takes it along, perhaps to the other worker).
    @inline(never)
    static func checkOpenAcrossYield(_ values: inout [Int], seen: inout [Bool]) {
        values.append(1)
        let before = gt_exclusivity_thread_has_accesses()
        GreenThread.yield()
        values.append(2)
        seen.append(before && gt_exclusivity_thread_has_accesses())
    }

    static func mutateSleeping(_ values: inout [Int], seed: Int) {
        for i in 0..<10 {
            values.append(i)
            _ = try? GreenThread.sleep(for: .microseconds(50 + seed % 7))
        }
    }
}

/// Misuse must stop the process with a clear message, never hang.
@Suite("Bad input")
struct BadInputTests {
    @Test func zeroWorkersIsRefused() async {
        await #expect(processExitsWith: .failure) {
            _ = Runtime(workers: 0)
        }
    }

    @Test func tinyStackIsRefused() async {
        await #expect(processExitsWith: .failure) {
            _ = Runtime(configuration: .init(workers: 1, stackSize: 1024))
        }
    }

    @Test func goOutsideARuntimeIsRefused() async {
        await #expect(processExitsWith: .failure) {
            go { 1 }
        }
    }

    @Test func spawnAfterShutdownIsRefused() async {
        await #expect(processExitsWith: .failure) {
            let rt = Runtime(workers: 1)
            rt.shutdown()
            rt.spawn { 1 }
        }
    }

    @Test func runInsideAGreenThreadIsRefused() async {
        await #expect(processExitsWith: .failure) {
            let rt = Runtime(workers: 1)
            _ = try? rt.run { try rt.run { 1 } }
        }
    }
}
