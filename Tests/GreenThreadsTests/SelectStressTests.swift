import CContext
import Synchronization
import Testing
@testable import GreenThreads

// Randomized schedules of selects racing each other, plain sends and
// receives, closes and cancellations, over channels of every kind, with
// duplicate cases and selects that send and receive on the same channel.
// Conservation: every value whose send completed is received exactly once
// (by a select, a plain receive, or the final drain), and no other value
// is ever received.

/// What one select of the stress did.
private enum Outcome: Sendable {
    case sent(Int)
    case received(Int)
    case sawClosed
    case nothing  // default or timeout
}

/// What one green thread of the stress saw.
private struct Record: Sendable {
    var sent: [Int] = []
    var received: [Int] = []
}

/// Operations done so far by all threads: the disruptions are timed by it.
private final class Progress: Sendable {
    let ops = Atomic<Int>(0)

    /// Yields until `n` operations are done, or progress stalls for 20 ms
    /// (every thread parked in a select whose counterparts are parked too:
    /// only the close will end that), or every thread has ended.
    func await(_ n: Int, _ threads: [JoinHandle<Record>]) {
        var seen = ops.load(ordering: .relaxed), since = gt_now_ns()
        while seen < n && !threads.allSatisfy(\.isFinished) {
            GreenThread.yield()
            let now = ops.load(ordering: .relaxed)
            if now != seen {
                seen = now
                since = gt_now_ns()
            } else if gt_now_ns() - since > 20_000_000 {
                return
            }
        }
    }
}

/// One random case: which channel, and whether it sends.
private struct Pick {
    let channel: Int
    let sends: Bool
    let value: Int
}

private func oneSelect(_ channels: [Channel<Int>], _ picks: [Pick], withDefault: Bool, withTimeout: Bool) throws -> Outcome {
    try select {
        for p in picks {
            if p.sends {
                Case.send(channels[p.channel], p.value) { Outcome.sent(p.value) }
            } else {
                Case.receive(channels[p.channel]) { v in v.map { Outcome.received($0) } ?? Outcome.sawClosed }
            }
        }
        if withDefault { Case.default { Outcome.nothing } }
        if withTimeout { Case.timeout(.milliseconds(1)) { Outcome.nothing } }
    }
}

@Suite("Select stress", .serialized)
struct SelectStressTests {
    @Test(arguments: [1, 2])
    func selectsRacingSendsReceivesClosesAndCancellationsLoseNothing(workers: Int) throws {
        for round in 0..<4 {
            let seed = UInt64(round * 7_919 + workers)
            let (records, drained) = try Runtime(workers: workers).runAndShutdown { () throws -> ([Record], [Int]) in
                let capacities = [0, 0, 1, 4, 0, 2]
                let channels = capacities.map { Channel<Int>(capacity: $0) }
                let progress = Progress()
                let perThread = 1_500
                let threads = (0..<8).map { t in
                    go { () -> Record in
                        var rng = Mix(seed &+ UInt64(t) &* 101)
                        var record = Record()
                        for i in 0..<perThread {
                            progress.ops.add(1, ordering: .relaxed)
                            let value = t * 10_000_000 + i * 16
                            do {
                                if rng.below(5) == 0 {
                                    // A plain operation between the selects.
                                    let ch = channels[rng.below(channels.count)]
                                    if rng.below(2) == 0 {
                                        if ch.trySend(value) { record.sent.append(value) }
                                    } else if let v = ch.tryReceive() {
                                        record.received.append(v)
                                    }
                                    continue
                                }
                                // 1-4 cases, duplicates and both ends of one
                                // channel allowed.
                                let picks = (0..<(1 + rng.below(4))).map { j in
                                    Pick(channel: rng.below(channels.count), sends: rng.below(2) == 0, value: value + j)
                                }
                                let kind = rng.below(4)
                                switch try oneSelect(channels, picks, withDefault: kind == 0, withTimeout: kind == 1) {
                                case .sent(let v): record.sent.append(v)
                                case .received(let v): record.received.append(v)
                                case .sawClosed, .nothing: break
                                }
                                if rng.below(8) == 0 { GreenThread.yield() }
                            } catch is CancellationError {
                                return record
                            } catch ChannelError.closed {
                                continue
                            } catch {
                                Issue.record("unexpected error \(error)")
                                return record
                            }
                        }
                        return record
                    }
                }
                // Cancel two threads and close two channels at random
                // moments of the run, then close the rest near its end.
                var rng = Mix(seed)
                let total = 8 * perThread
                for victim in [rng.below(8), rng.below(8)] {
                    progress.await(total / 10 + rng.below(total / 2), threads)
                    threads[victim].cancel()
                }
                progress.await(total / 3 + rng.below(total / 3), threads)
                channels[rng.below(channels.count)].close()
                channels[rng.below(channels.count)].close()
                progress.await(total * 3 / 4 + rng.below(total / 5), threads)
                channels.forEach { $0.close() }
                let records = try joinAll(threads)
                var drained: [Int] = []
                for ch in channels {
                    while let v = ch.tryReceive() { drained.append(v) }
                    #expect(ch.waiterCount == 0, "a finished select left a waiter queued")
                }
                return (records, drained)
            }
            let sent = records.flatMap(\.sent)
            let received = records.flatMap(\.received) + drained
            #expect(Set(sent).count == sent.count, "round \(round): a value was sent twice")
            #expect(Set(received).count == received.count, "round \(round): a value was received twice")
            #expect(Set(received) == Set(sent), "round \(round): sent \(sent.count), received \(received.count)")
        }
    }
}

extension Runtime {
    /// Runs `body` as a green thread and shuts the runtime down after it.
    fileprivate func runAndShutdown<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        defer { shutdown() }
        return try run(body)
    }
}
