import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// Readiness must always have someone to collect it (`Sysmon.watchSockets`).
@Suite("UnwatchedSockets")
struct UnwatchedSocketTests {
    /// Two idle workers: one blocked in epoll_wait, the other asleep on its
    /// futex. A write readies a green thread that then computes for 300 ms
    /// without switching, on the worker that collected it; the other still
    /// sleeps when a second reader's data arrives. Unwatched, nobody would
    /// poll until the loop ended (~280 ms later); sysmon sees no poll for
    /// 10 ms and wakes the sleeper, which collects it.
    @Test(arguments: [1, 2, 3])
    func readinessIsCollectedWhileThePollerComputes(round: Int) throws {
        try expectTimely { () throws -> [TimingBound] in
            let rt = Runtime(workers: 2)
            defer { rt.shutdown() }
            let (l1, c1) = try loopbackPair()
            let (l2, c2) = try loopbackPair()
            let s1 = try l1.accept(timeout: .seconds(5))
            let s2 = try l2.accept(timeout: .seconds(5))
            defer { for c in [c1, c2, s1, s2] { c.close() }; l1.close(); l2.close() }
            let looper = rt.spawn { () throws in
                _ = try s1.readExactly(1, timeout: .seconds(10))
                let end = gt_now_ns() + 300_000_000
                while gt_now_ns() < end {}  // no switch, no checkpoint
            }
            let reader = rt.spawn { () throws -> Int64 in
                _ = try s2.readExactly(1, timeout: .seconds(10))
                return gt_now_ns()
            }
            usleep(50_000)  // both parked on their sockets, both workers asleep
            try c1.write([1])
            usleep(20_000)  // the looper computes
            let sent = gt_now_ns()
            try c2.write([2])
            let woke = try reader.join()
            try looper.join()
            // Busy or not, well before the loop ends.
            return [.below("the reader's wait after its data arrived", woke - sent, 150_000_000,
                           loaded: 250_000_000)]
        }
    }
}
}
