import CContext
import Testing
@testable import GreenThreads

/// The spare deadline node of the calling green thread, and its live
/// entry's deadline (`.max` for none).
private func spareEntryDeadline() -> Int64? {
    GreenThread.currentFiber?.spareScopes?.spareNode?.liveEntryDeadline
}

/// Entries in the calling worker's timer heap, stale ones included.
private func heapCount() -> Int {
    Unmanaged<Worker>.fromOpaque(gt_current_worker()!)._withUnsafeGuaranteedRef { $0.timers.count }
}

/// A receive that succeeds without waiting long: a value is already there.
private func receiveReady(_ ch: Channel<Int>) throws -> Int? {
    try ch.send(1)
    return try ch.receive()
}

/// A deadline node's timer entry outlives its scope (Deadline.swift, "A
/// deadline node's timer: one lazy entry"): these check that it never
/// fires late, never trips what it should not, and never piles up.
@Suite("Deadline scopes' lazy timer", .serialized)
struct DeadlineLazyTimerTests {
    /// A long scope leaves its entry an hour away; a short scope after it
    /// needs an earlier entry, and gets one: it trips on time.
    @Test func aLongScopeThenAShortOneTripsOnTime() throws {
        try expectTimely { () throws -> [TimingBound] in
            try onRuntime(workers: 1) { () throws -> [TimingBound] in
                let ready = Channel<Int>(capacity: 1), never = Channel<Int>()
                let hourFromNow = gt_now_ns() + 3_600_000_000_000
                #expect(try withDeadline(after: .seconds(3600)) { try receiveReady(ready) } == 1)
                let long = try #require(spareEntryDeadline())
                #expect(long >= hourFromNow && long != .max, "the scope's entry stays, an hour away")
                let start = gt_now_ns()
                var thrown: (any Error)?
                do {
                    try withDeadline(after: .milliseconds(20)) { _ = try never.receive() }
                } catch { thrown = error }
                let elapsed = gt_now_ns() - start
                #expect(thrown is DeadlineExceeded)
                #expect(elapsed >= 20_000_000, "a deadline never passes early")
                #expect(spareEntryDeadline() == .max, "the short entry fired; the long one was withdrawn")
                #expect(never.waiterCount == 0)
                return [.below("a short scope after a long one", elapsed - 20_000_000, 200_000_000)]
            }
        }
    }

    /// A short scope's entry, left behind when the scope ended, fires while
    /// a later scope with a later deadline waits: it puts the entry back at
    /// the later deadline without tripping; when that one passes, the scope
    /// trips on time.
    @Test func aStaleEntryCarriesOnToTheLaterScopesDeadline() throws {
        try expectTimely { () throws -> [TimingBound] in
            try onRuntime(workers: 1) { () throws -> [TimingBound] in
                let ready = Channel<Int>(capacity: 1), never = Channel<Int>()
                #expect(try withDeadline(after: .milliseconds(10)) { try receiveReady(ready) } == 1)
                let start = gt_now_ns()
                var slept = false
                var thrown: (any Error)?
                do {
                    try withDeadline(after: .milliseconds(60)) {
                        try GreenThread.sleep(for: .milliseconds(20))  // past the stale entry
                        slept = true
                        _ = try never.receive()
                    }
                } catch { thrown = error }
                let elapsed = gt_now_ns() - start
                #expect(slept, "the stale entry tripped a scope whose deadline had not passed")
                #expect(thrown is DeadlineExceeded)
                #expect(elapsed >= 60_000_000, "a deadline never passes early")
                #expect(never.waiterCount == 0)
                return [.below("a scope served by a re-inserted entry", elapsed - 60_000_000, 200_000_000)]
            }
        }
    }

    /// An entry that fires after its scope ended, with no scope active,
    /// interrupts nothing and is dropped, not re-inserted; with a later
    /// scope active, it moves to that scope's deadline.
    @Test func aStaleEntryFiringAfterItsScopeEndedDoesNothing() throws {
        try onRuntime(workers: 1) { () throws in
            let ready = Channel<Int>(capacity: 1)
            #expect(try withDeadline(after: .milliseconds(5)) { try receiveReady(ready) } == 1)
            #expect(spareEntryDeadline() != .max, "the entry stays after its scope")
            // A wait outside every scope, across the entry's deadline.
            try GreenThread.sleep(for: .milliseconds(30))
            #expect(try receiveReady(ready) == 1)
            #expect(spareEntryDeadline() == .max, "fired with no scope active: dropped")

            #expect(try withDeadline(after: .milliseconds(5)) { try receiveReady(ready) } == 1)
            let hourFromNow = gt_now_ns() + 3_600_000_000_000
            try withDeadline(after: .seconds(3600)) {
                try GreenThread.sleep(for: .milliseconds(30))  // not interrupted
                #expect(try receiveReady(ready) == 1)
            }
            let moved = try #require(spareEntryDeadline())
            #expect(moved >= hourFromNow && moved != .max, "fired inside the later scope: moved to its deadline")
            #expect(GreenThread.currentFiber?.scopes == nil)
            #expect(GreenThread.currentFiber?.spareScopes?.trips.load(ordering: .relaxed) == 0)
        }
    }

    /// Scope after scope, with the deadline moving later (the entry stays),
    /// earlier (a fresh entry each time, the old one withdrawn) or nested
    /// (two nodes, one kept): the heap keeps at most one live entry for the
    /// thread, and its stale ones stay below the heap's purge threshold.
    @Test func scopesInALoopLeaveAtMostOneEntry() throws {
        let growth = try onRuntime(workers: 1) { () throws -> [String: Int] in
            let ready = Channel<Int>(capacity: 1)
            let before = heapCount()
            var growth: [String: Int] = [:]
            var most = 0
            for _ in 0..<10_000 {
                _ = try withDeadline(after: .seconds(3600)) { try receiveReady(ready) }
                most = max(most, heapCount() - before)
            }
            growth["later"] = most
            most = 0
            for i in 0..<10_000 {
                _ = try withDeadline(after: .seconds(3600) - .milliseconds(i)) { try receiveReady(ready) }
                most = max(most, heapCount() - before)
            }
            growth["earlier"] = most
            most = 0
            for i in 0..<10_000 {
                _ = try withDeadline(after: .seconds(7200)) {
                    try withDeadline(after: .seconds(3600) - .milliseconds(i)) { try receiveReady(ready) }
                }
                most = max(most, heapCount() - before)
            }
            growth["nested"] = most
            return growth
        }
        #expect(growth["later"] == 1, "one entry serves every later scope: \(growth)")
        #expect(growth.values.allSatisfy { $0 >= 1 && $0 <= TimerHeap.purgeFloor + 1 }, "\(growth)")
    }

    /// Green threads that each end after a deadline scope: a finished
    /// thread's node keeps its entry only while its fiber waits for reuse,
    /// and the next thread on that fiber takes over node and entry, so the
    /// entries stay bounded by the threads alive at once, not by the
    /// threads that ever ran.
    @Test func finishedThreadsLeaveNoEntriesBehind() throws {
        let growth = try onRuntime(workers: 1) { () throws -> Int in
            let before = heapCount()
            var most = 0
            for _ in 0..<200 {
                let batch = (0..<50).map { _ in
                    go { () throws -> Int? in
                        let ready = Channel<Int>(capacity: 1)
                        return try withDeadline(after: .seconds(3600)) { try receiveReady(ready) }
                    }
                }
                for h in batch { #expect(try h.join() == 1) }
                most = max(most, heapCount() - before)
            }
            return most
        }
        #expect(growth <= 1_000, "entries piled up: \(growth) for 10,000 finished threads")
    }
}
