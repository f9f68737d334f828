import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Whether the top page of a stack (where every green thread starts) is
/// resident (mincore).
private func topPageResident(base: UInt, size: Int) -> Bool {
    let page = Int(gt_page_size())
    var vec: UInt8 = 0
    guard let top = UnsafeMutableRawPointer(bitPattern: base + UInt(size - page)),
          mincore(top, page, &vec) == 0 else { return false }
    return vec & 1 == 1
}

/// One worker and no replacement workers: every stack ends in one pool.
private func singlePoolRuntime() -> Runtime {
    Runtime(configuration: .init(workers: 1, handoffThreshold: nil))
}

/// Starts `n` green threads that are all alive at once (each waits for the
/// gate, which closes once all have started), so each has its own stack;
/// each returns its stack's base and size.
private func concurrentThreads(_ n: Int) throws -> [(UInt, Int)] {
    let gate = Channel<Int>()
    let started = Atomic<Int>(0)
    let hs = (0..<n).map { _ in go { () -> (UInt, Int) in
        started.add(1, ordering: .relaxed)
        _ = try gate.receive()
        let s = GreenThread.currentFiber!.stack
        return (UInt(bitPattern: s.base), s.size)
    } }
    // Each started thread holds its stack until the gate closes.
    while started.load(ordering: .relaxed) < n { GreenThread.yield() }
    gate.close()
    return try joinAll(hs)
}

/// Polls for up to ten decay periods until no more than the warm set of
/// `stacks` is resident; returns how many are.
private func residentAfterDecay(_ stacks: [(UInt, Int)]) -> Int {
    let deadline = gt_now_ns() + 10 * StackPool.decayNanos
    var resident = Int.max
    while gt_now_ns() < deadline {
        resident = stacks.filter { topPageResident(base: $0.0, size: $0.1) }.count
        if resident <= StackPool.warmCount { break }
        usleep(50_000)
    }
    return resident
}

@Suite("Stack trimming", .serialized)
struct StackTrimTests {
    /// An idle worker gives back only what went unused for a whole decay
    /// period: a burst's stacks stay resident while the worker sleeps
    /// between bursts (no fault storm in the next one), and go back to the
    /// kernel, all but the warm set, once a period passes without use.
    @Test func pooledStacksDecayAfterAnIdlePeriod() throws {
        let rt = singlePoolRuntime()
        defer { rt.shutdown() }
        let n = 1_000
        let stacks = try rt.run { try concurrentThreads(n) }
        #expect(Set(stacks.map(\.0)).count == n)
        // The worker has fallen idle, but the period in which the burst took
        // its stacks is not over: they keep their pages.
        let kept = stacks.filter { topPageResident(base: $0.0, size: $0.1) }.count
        #expect(kept >= n * 9 / 10, "only \(kept) of \(n) stacks still resident right after the burst")

        // Within a few periods, all but the warm set are given back.
        let resident = residentAfterDecay(stacks)
        #expect(resident <= StackPool.warmCount, "\(resident) of \(n) stacks still resident after the decay")
    }

    /// Bursts that come back within the period, with the worker asleep in
    /// between, find their stacks resident: no new mappings, and the
    /// pages the last burst touched are still there after each sleep
    /// (trimming at every sleep faulted one page per stack back in).
    @Test func burstsWithinThePeriodKeepTheirStacksResident() throws {
        let rt = singlePoolRuntime()
        defer { rt.shutdown() }
        let n = 500
        func burst() throws -> [(UInt, Int)] {
            let stacks = try rt.run { try concurrentThreads(n) }
            usleep(20_000)  // long enough for the worker to fall asleep
            return stacks
        }
        _ = try burst()
        let mapped = rt.stats.stacksMapped
        for round in 0..<5 {
            let stacks = try burst()
            let resident = stacks.filter { topPageResident(base: $0.0, size: $0.1) }.count
            #expect(resident >= n * 9 / 10, "round \(round): \(resident) of \(n) stacks resident after the sleep")
        }
        #expect(rt.stats.stacksMapped == mapped)
    }

    /// A burst larger than a worker's own pool spills into the node's
    /// shared pool: those stacks keep their pages too (a repeat of the
    /// burst does not fault them back in), and the shared pool decays like
    /// the worker's, so within a few periods only the warm set is resident.
    @Test func spilledStacksStayResidentThenDecay() throws {
        let rt = singlePoolRuntime()
        defer { rt.shutdown() }
        let n = 2 * StackPool.spillAt + 1_000
        let stacks = try rt.run { try concurrentThreads(n) }
        #expect(Set(stacks.map(\.0)).count == n)
        let kept = stacks.filter { topPageResident(base: $0.0, size: $0.1) }.count
        #expect(kept >= n * 9 / 10, "only \(kept) of \(n) stacks still resident right after the burst")

        let mapped = rt.stats.stacksMapped
        let again = try rt.run { try concurrentThreads(n) }
        #expect(rt.stats.stacksMapped == mapped, "a repeat of the burst mapped new stacks")
        #expect(Set(again.map(\.0)) == Set(stacks.map(\.0)))

        let resident = residentAfterDecay(stacks)
        #expect(resident <= StackPool.warmCount, "\(resident) of \(n) stacks still resident after the decay")
    }
}
