import Synchronization
import CContext
import Testing
@testable import GreenThreads

// Go's one-instant rule for select: a select behaves as if it looked at all
// its channels at one instant. It takes `default` (or parks) only if no case
// was ready at that instant. Ported from Go's runtime/chan_test.go
// (TestNonblockSelectRace, TestNonblockSelectRace2) and widened: a racer
// makes c2 ready and then empties c1 while the select runs, so at every
// instant one of the two is ready and `default` must never run.

/// Channels that are never ready: padding that widens a select's poll.
private let padding = (0..<32).map { _ in Channel<Int>() }

/// The round-by-round handshake between the selecting thread and the racer.
private final class Rounds: Sendable {
    let started = Atomic<Int>(-1)
    let finished = Atomic<Int>(-1)
    /// Whether the racer's tryReceive took c1's value this round.
    let racerTook = Atomic<Int>(0)
    /// When the current round's select started (monotonic ns), and how
    /// long a select has lately taken: the racer acts at a uniformly random
    /// moment of that span, so it lands inside the select's poll often.
    let startedAt = Atomic<Int64>(0)
    let selectNanos = Atomic<Int64>(1_000)
    /// Set by the selecting thread when the time budget ends the rounds.
    let stopped = Atomic<Bool>(false)
    let c1 = Channel<Int>(capacity: 1)
    let c2 = Channel<Int>(capacity: 1)

    /// Waits until `counter` reaches `round`: spins, then yields, so two
    /// green threads that share a worker still take turns.
    func await(started round: Int) { Rounds.await(started, round) }
    func await(finished round: Int) { Rounds.await(finished, round) }

    private static func await(_ counter: borrowing Atomic<Int>, _ round: Int) {
        var spins = 0
        while counter.load(ordering: .acquiring) < round {
            spins += 1
            if spins % 64 == 0 { GreenThread.yield() }
        }
    }
}

/// Busy-waits until the monotonic clock reaches `deadline`.
@inline(never)
private func spin(until deadline: Int64) {
    while gt_now_ns() < deadline {}
}

/// What one round of the race saw.
private enum RoundResult: Equatable { case c1, c2, tookDefault }

/// One select of a round: c1, c2, and (if `wide`) 32 never-ready cases, in
/// builder order c1, padding, c2 (or, `reversed`, c2, padding, c1: a
/// select that reads its channels in case order then reads c2 before the
/// racer fills it and c1 after the racer empties it); with or without
/// default.
private func raceSelect(_ r: Rounds, wide: Bool, withDefault: Bool, reversed: Bool) throws -> RoundResult {
    let (first, second) = reversed ? (r.c2, r.c1) : (r.c1, r.c2)
    let (firstResult, secondResult) = reversed ? (RoundResult.c2, RoundResult.c1) : (RoundResult.c1, RoundResult.c2)
    return try select {
        Case.receive(first) { _ in firstResult }
        if wide {
            for ch in padding { Case.receive(ch) { _ in RoundResult.tookDefault } }
        }
        Case.receive(second) { _ in secondResult }
        if withDefault { Case.default { RoundResult.tookDefault } }
    }
}

/// Runs up to `rounds` rounds, fewer if they take more than a few seconds
/// (a loaded machine slows every handshake, not the select's window);
/// returns how many took default, and in how many
/// the two values that entered the round (c1's, and the racer's send on
/// c2) were not found exactly once: taken by the select, taken by the
/// racer, or still buffered.
private func race(workers: Int, rounds: Int, wide: Bool, withDefault: Bool, reversed: Bool = false) throws -> (defaults: Int, lost: Int) {
    try onRuntime(workers: workers) { () throws -> (defaults: Int, lost: Int) in
        let r = Rounds()
        let budgetEnds = gt_now_ns() + 4_000_000_000
        let racerBody: @Sendable () -> Void = {
            // The racer: at a random moment of the select, make c2 ready,
            // then empty c1. At every instant c1 or c2 holds a value.
            var seed: UInt64 = 0x2545_F491_4F6C_DD1D
            for round in 0..<rounds {
                r.await(started: round)
                if r.stopped.load(ordering: .acquiring) { return }
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
                let span = max(r.selectNanos.load(ordering: .relaxed), 1) * 3 / 2
                spin(until: r.startedAt.load(ordering: .relaxed) + Int64(seed % UInt64(span)))
                precondition(r.c2.trySend(1), "c2 must have room at the start of a round")
                r.racerTook.store(r.c1.tryReceive() == nil ? 0 : 1, ordering: .relaxed)
                r.finished.store(round, ordering: .releasing)
            }
        }
        // At one worker the racer must be an OS thread to race at all; at
        // two, two green threads race side by side.
        let osThread: UInt64?
        let green: JoinHandle<Void>?
        if workers == 1 {
            osThread = startThread(racerBody)
            green = nil
        } else {
            osThread = nil
            green = go { racerBody() }
        }
        var defaults = 0, lost = 0
        for round in 0..<rounds {
            if round >= 1_000 && gt_now_ns() > budgetEnds {
                r.stopped.store(true, ordering: .releasing)
                r.started.store(round, ordering: .releasing)
                break
            }
            // A fresh round: c1 holds a value, c2 is empty.
            while r.c1.tryReceive() != nil {}
            while r.c2.tryReceive() != nil {}
            precondition(r.c1.trySend(1))
            let t0 = gt_now_ns()
            r.startedAt.store(t0, ordering: .relaxed)
            r.started.store(round, ordering: .releasing)
            let result = try raceSelect(r, wide: wide, withDefault: withDefault, reversed: reversed)
            let took = gt_now_ns() - t0
            let average = r.selectNanos.load(ordering: .relaxed)
            r.selectNanos.store(average + (took - average) / 16, ordering: .relaxed)
            if result == .tookDefault { defaults += 1 }
            r.await(finished: round)
            let selected = result == .tookDefault ? 0 : 1
            let found = selected + r.racerTook.load(ordering: .relaxed) + r.c1.count + r.c2.count
            if found != 2 { lost += 1 }
        }
        if let green { try green.join() } else { joinThread(osThread!) }
        return (defaults, lost)
    }
}

@Suite("select: Go's one-instant rule", .serialized)
struct SelectConformanceTests {
    /// Go's TestNonblockSelectRace (the spawner then takes c1 if it can)
    /// and TestNonblockSelectRace2 (it takes from c2, the channel it just
    /// filled, with a select of its own): c1 holds a value; a green thread
    /// selects on c1, c2 with default while the spawner sends on c2 and
    /// then empties one of them. Neither channel is empty at any instant
    /// before the selecting thread takes one.
    @Test(arguments: [(1, false), (2, false), (1, true), (2, true)])
    func goNonblockSelectRace(workers: Int, spawnerTakesC2: Bool) throws {
        let defaults = try onRuntime(workers: workers) { () throws -> Int in
            var defaults = 0
            for _ in 0..<20_000 {
                let c1 = Channel<Int>(capacity: 1), c2 = Channel<Int>(capacity: 1)
                try c1.send(1)
                let h = go { () throws -> Bool in
                    try select {
                        Case.receive(c1) { _ in true }
                        Case.receive(c2) { _ in true }
                        Case.default { false }
                    }
                }
                try c2.send(1)
                try select {
                    if spawnerTakesC2 {
                        Case.receive(c2) { _ in () }
                    } else {
                        Case.receive(c1) { _ in () }
                    }
                    Case.default { () }
                }
                if try !h.join() { defaults += 1 }
            }
            return defaults
        }
        #expect(defaults == 0, "a select took default although c1 or c2 was ready at every instant")
    }

    /// The race with a random delay, two cases and default, in both case
    /// orders: never default.
    @Test(arguments: [(1, false), (2, false), (1, true), (2, true)])
    func twoCasesNeverTakeDefaultWhileOneIsReady(workers: Int, reversed: Bool) throws {
        let (defaults, lost) = try race(workers: workers, rounds: 20_000, wide: false, withDefault: true, reversed: reversed)
        #expect(defaults == 0, "\(defaults) rounds took default although c1 or c2 was ready")
        #expect(lost == 0)
    }

    /// The same with 32 never-ready cases between c1 and c2, which widens
    /// a poll that visits the channels one by one.
    @Test(arguments: [(1, false), (2, false), (1, true), (2, true)])
    func thirtyFourCasesNeverTakeDefaultWhileOneIsReady(workers: Int, reversed: Bool) throws {
        let (defaults, lost) = try race(workers: workers, rounds: 5_000, wide: true, withDefault: true, reversed: reversed)
        #expect(defaults == 0, "\(defaults) rounds took default although c1 or c2 was ready")
        #expect(lost == 0)
    }

    /// Without default the select must neither park for good nor take a
    /// value twice: it always returns c1's or c2's value.
    @Test(arguments: [(1, false), (2, false), (1, true), (2, true)])
    func blockingSelectsUnderTheSameRaceTakeExactlyOne(workers: Int, wide: Bool) throws {
        let (defaults, lost) = try race(workers: workers, rounds: 3_000, wide: wide, withDefault: false)
        #expect(defaults == 0)
        #expect(lost == 0)
    }
}
