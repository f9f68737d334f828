import Synchronization
import Testing
@testable import GreenThreads

// Randomized schedules for the channel paths: the specialized fast paths
// (buffer, hand-over to and from a parked counterpart), parking, select
// cases mixed in, close and cancellation racing all of them. Each test
// checks conservation: every value a send reported as sent is received
// exactly once, and nothing else is.

/// SplitMix64: a small seeded generator, so a failing round can be named.
struct Mix: Sendable {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// A never-ready channel, to give selects a second case.
private let neverReady = Channel<Int>()

/// One send, chosen at random: plain, a select case beside a case that is
/// never ready, or a few trySends (then a plain send: if both sides only
/// polled, an unbuffered channel would never rendezvous). Throws what the
/// send throws.
private func randomSend(_ ch: Channel<Int>, _ v: Int, _ rng: inout Mix) throws {
    switch rng.below(4) {
    case 0:
        try select {
            Case.send(ch, v) { () }
            Case.receive(neverReady) { _ in () }
        }
    case 1:
        for _ in 0..<3 {
            if ch.trySend(v) { return }
            if ch.isClosed { throw ChannelError.closed }
            GreenThread.yield()
        }
        try ch.send(v)
    default:
        try ch.send(v)
    }
}

/// One receive, chosen at random like `randomSend`. nil: closed and drained.
private func randomReceive(_ ch: Channel<Int>, _ rng: inout Mix) throws -> Int? {
    switch rng.below(4) {
    case 0:
        return try select {
            Case.receive(ch) { v in v }
            Case.receive(neverReady) { _ in nil }
        }
    case 1:
        for _ in 0..<3 {
            if let v = ch.tryReceive() { return v }
            GreenThread.yield()
        }
        return try ch.receive()
    default:
        return try ch.receive()
    }
}

@Suite("Channel stress", .serialized)
struct ChannelStressTests {
    /// Many senders and receivers, random operation kinds and random
    /// yields, unbuffered and buffered, at one and two workers: each value
    /// arrives exactly once.
    @Test(arguments: [1, 2])
    func randomizedSendersAndReceiversLoseNothing(workers: Int) throws {
        for round in 0..<6 {
            let capacity = [0, 1, 3, 64][round % 4]
            let senders = 2 + round % 5, receivers = 1 + (round * 7) % 5, perSender = 3_000
            let seed = UInt64(round * 1_000 + workers)
            let chunks = try onRuntime(workers: workers) { () throws -> [[Int]] in
                let ch = Channel<Int>(capacity: capacity)
                let wg = WaitGroup()
                for s in 0..<senders {
                    wg.go {
                        var rng = Mix(seed &+ UInt64(s))
                        for i in 0..<perSender {
                            try randomSend(ch, s * perSender + i, &rng)
                            if rng.below(8) == 0 { GreenThread.yield() }
                        }
                    }
                }
                let rs = (0..<receivers).map { r in
                    go { () throws -> [Int] in
                        var rng = Mix(seed &+ 100 &+ UInt64(r))
                        var mine: [Int] = []
                        while let v = try randomReceive(ch, &rng) {
                            mine.append(v)
                            if rng.below(8) == 0 { GreenThread.yield() }
                        }
                        return mine
                    }
                }
                try wg.wait()
                ch.close()
                return try joinAll(rs)
            }
            var seen = [Int](repeating: 0, count: senders * perSender)
            for chunk in chunks { for v in chunk { seen[v] += 1 } }
            let context = "round \(round), capacity \(capacity), \(workers) worker(s)"
            #expect(seen.allSatisfy { $0 == 1 }, "\(context): a value was lost or duplicated")
        }
    }

    /// `close` at a random moment while senders and receivers are busy (and
    /// some of them parked): exactly the values whose send returned are
    /// received, each once; a send that threw sent nothing.
    @Test(arguments: [1, 2])
    func closeRacingSendAndReceiveKeepsEverySentValue(workers: Int) throws {
        for round in 0..<12 {
            let capacity = [0, 2, 16][round % 3]
            let senders = 4, receivers = 3
            let seed = UInt64(round * 31 + workers)
            let (sent, received) = try onRuntime(workers: workers) { () throws -> ([Int], [Int]) in
                let ch = Channel<Int>(capacity: capacity)
                let ss = (0..<senders).map { s in
                    go { () -> [Int] in
                        var rng = Mix(seed &+ UInt64(s))
                        var ok: [Int] = []
                        var i = 0
                        while true {
                            let v = s * 1_000_000 + i
                            do { try randomSend(ch, v, &rng) } catch { return ok }
                            ok.append(v)
                            i += 1
                        }
                    }
                }
                let rs = (0..<receivers).map { r in
                    go { () throws -> [Int] in
                        var rng = Mix(seed &+ 50 &+ UInt64(r))
                        var mine: [Int] = []
                        while let v = try randomReceive(ch, &rng) { mine.append(v) }
                        return mine
                    }
                }
                var rng = Mix(seed)
                for _ in 0..<(1 + rng.below(200)) { GreenThread.yield() }
                ch.close()
                return (try joinAll(ss).flatMap { $0 }, try joinAll(rs).flatMap { $0 })
            }
            let context = "round \(round), capacity \(capacity), \(workers) worker(s)"
            #expect(received.count == Set(received).count, "\(context): a value arrived twice")
            #expect(Set(received) == Set(sent), "\(context): sent \(sent.count), received \(received.count)")
        }
    }

    /// Receivers cancelled at random while parked, or just as a sender
    /// hands them a value: a value is either received by the cancelled
    /// receiver (which then reports it) or stays in the channel for the
    /// others; none is lost.
    @Test(arguments: [1, 2])
    func cancellationRacingHandOverLosesNothing(workers: Int) throws {
        for round in 0..<8 {
            let capacity = round % 2 == 0 ? 0 : 4
            let perSender = 2_000, senders = 3
            let seed = UInt64(round * 17 + workers)
            let (total, unique, expected) = try onRuntime(workers: workers) { () throws -> (Int, Int, Int) in
                let ch = Channel<Int>(capacity: capacity)
                let wg = WaitGroup()
                for s in 0..<senders {
                    wg.go {
                        var rng = Mix(seed &+ UInt64(s))
                        for i in 0..<perSender {
                            try randomSend(ch, s * perSender + i, &rng)
                        }
                    }
                }
                // Victims: receive until cancelled; what they got counts.
                let victims = (0..<4).map { _ in
                    go { () -> [Int] in
                        var mine: [Int] = []
                        while true {
                            do {
                                guard let v = try ch.receive() else { return mine }
                                mine.append(v)
                            } catch {
                                return mine
                            }
                        }
                    }
                }
                let steady = go { () throws -> [Int] in
                    var mine: [Int] = []
                    for v in ch { mine.append(v) }
                    return mine
                }
                var rng = Mix(seed)
                for v in victims {
                    for _ in 0..<rng.below(50) { GreenThread.yield() }
                    v.cancel()
                }
                try wg.wait()
                ch.close()
                let all = try joinAll(victims).flatMap { $0 } + (try steady.join())
                return (all.count, Set(all).count, senders * perSender)
            }
            let context = "round \(round), capacity \(capacity), \(workers) worker(s)"
            #expect(total == expected, "\(context): received \(total) of \(expected)")
            #expect(unique == total, "\(context): a value arrived twice")
        }
    }
}
