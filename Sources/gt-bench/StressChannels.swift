// The stress soak's channel workloads: many producers and consumers on one
// channel of each capacity class, early close, and a select fan-in over
// several channels. What each checks is in StressCommand.swift's header.
import CContext
import GreenThreads
import Synchronization

/// A message: producer (or channel) index in the high half, sequence number
/// in the low half, so a receiver can check exactly-once and order.
private func message(_ source: Int, _ seq: Int) -> Int { source << 32 | seq }
private func source(of m: Int) -> Int { m >> 32 }
private func sequence(of m: Int) -> Int { m & 0xFFFF_FFFF }

/// What one receive attempt saw.
private enum Got: Sendable {
    case value(Int)
    case closed
    case nothing
}

enum StressChannels {
    /// The capacity classes: unbuffered, one slot, small, large.
    static func capacity(_ rng: inout StressRandom) -> Int {
        switch rng.int(0...3) {
        case 0: return 0
        case 1: return 1
        case 2: return rng.int(2...16)
        default: return rng.int(64...1024)
        }
    }

    /// P producers and C consumers on one channel, each operation done one
    /// of four ways (plain, try + yield, select with a timeout, select with
    /// default). Closed when every producer is done, or, in a quarter of the
    /// rounds, early by a closer while producers still send.
    static func manyToMany(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let capacity = capacity(&d.rng)
        let producers = d.size(1...8)
        let consumers = d.size(1...8)
        let perProducer = d.size(200...6_000)
        let closeEarly = !d.envelope && d.rng.chance(0.25)
        let ch = Channel<Int>(capacity: capacity)
        let what = "capacity \(capacity), \(producers)x\(consumers), \(perProducer) each\(closeEarly ? ", early close" : "")"
        ctx.describe("channels", what)

        let senders = (0..<producers).map { p in
            let seed = d.seed()
            return ctx.spawn { () throws -> Int in
                var rng = StressRandom(seed: seed)
                for seq in 0..<perProducer {
                    do {
                        try send(ch, message(p, seq), &rng)
                    } catch ChannelError.closed where closeEarly {
                        return seq
                    }
                    ctx.tick()
                }
                return perProducer
            }
        }
        let receivers = (0..<consumers).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> [Int] in
                var rng = StressRandom(seed: seed)
                var got: [Int] = []
                while case .value(let m) = try receive(ch, &rng) {
                    got.append(m)
                    ctx.tick()
                }
                return got
            }
        }
        var closer: JoinHandle<Void>?
        if closeEarly {
            let delay = d.rng.micros(0...3_000)
            closer = ctx.spawn { try GreenThread.sleep(for: delay); ch.close() }
        }
        let sent = try joinAll(senders)
        ch.close()
        try closer?.join()
        let received = try joinAll(receivers)
        try checkExactlyOnce(sent: sent, received: received, what)
    }

    /// K channels of random capacities, a producer each, and 1-3 consumers
    /// that select over every channel not yet seen closed, some selects
    /// with a timeout, some with default.
    static func fanIn(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let count = d.size(2...4)
        let channels = (0..<count).map { _ in Channel<Int>(capacity: [0, 1, 8][d.rng.int(0...2)]) }
        let perChannel = d.size(200...4_000)
        let consumers = d.size(1...3)
        let what = "fan-in of \(count) (capacities \(channels.map(\.capacity))), \(consumers) consumers, \(perChannel) each"
        ctx.describe("fan-in", what)

        let senders = channels.enumerated().map { i, ch in
            let seed = d.seed()
            return ctx.spawn { () throws -> Int in
                var rng = StressRandom(seed: seed)
                for seq in 0..<perChannel {
                    try send(ch, message(i, seq), &rng)
                    ctx.tick()
                }
                ch.close()
                return perChannel
            }
        }
        let receivers = (0..<consumers).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> [Int] in
                var rng = StressRandom(seed: seed)
                var open = Array(repeating: true, count: count)
                var got: [Int] = []
                while open.contains(true) {
                    let mode = rng.int(0...5)
                    let wait = rng.micros(20...500)
                    let (index, outcome): (Int, Got) = try select {
                        for i in 0..<count where open[i] {
                            Case.receive(channels[i]) { v in (i, v.map { Got.value($0) } ?? Got.closed) }
                        }
                        if mode == 4 { Case.timeout(wait) { (-1, Got.nothing) } }
                        if mode == 5 { Case.default { (-1, Got.nothing) } }
                    }
                    switch outcome {
                    case .value(let m):
                        try require(source(of: m) == index, "\(what): a message of channel \(source(of: m)) came out of channel \(index)")
                        got.append(m)
                        ctx.tick()
                    case .closed: open[index] = false
                    case .nothing: GreenThread.yield()
                    }
                }
                return got
            }
        }
        let sent = try joinAll(senders)
        let received = try joinAll(receivers)
        try checkExactlyOnce(sent: sent, received: received, what)
    }

    /// One send, done one of four ways; every way either delivers the value
    /// exactly once or throws `ChannelError.closed` (not delivered). A
    /// polling way gives up after a few tries and sends plainly: two
    /// pollers on an unbuffered channel never meet (neither parks).
    private static func send(_ ch: Channel<Int>, _ value: Int, _ rng: inout StressRandom) throws {
        let polls = rng.int(1...32)
        switch rng.int(0...9) {
        case 0...5:
            try ch.send(value)
        case 6:
            for _ in 0..<polls {
                if ch.trySend(value) { return }
                if ch.isClosed { throw ChannelError.closed }
                GreenThread.yield()
            }
            try ch.send(value)
        case 7, 8:
            let wait = rng.micros(20...500)
            while try !select({
                Case.send(ch, value) { true }
                Case.timeout(wait) { false }
            }) {}
        default:
            for _ in 0..<polls {
                let sent = try select {
                    Case.send(ch, value) { true }
                    Case.default { false }
                }
                if sent { return }
                GreenThread.yield()
            }
            try ch.send(value)
        }
    }

    /// One receive, done one of four ways; `.closed` only once the channel
    /// is closed and drained. Polling ways fall back as `send`'s do.
    private static func receive(_ ch: Channel<Int>, _ rng: inout StressRandom) throws -> Got {
        let polls = rng.int(1...32)
        switch rng.int(0...9) {
        case 0...5:
            break
        case 6:
            for _ in 0..<polls {
                if let v = ch.tryReceive() { return .value(v) }
                if ch.isClosed { return ch.tryReceive().map { .value($0) } ?? .closed }
                GreenThread.yield()
            }
        case 7, 8:
            let wait = rng.micros(20...500)
            while true {
                let got: Got = try select {
                    Case.receive(ch) { v in v.map { Got.value($0) } ?? Got.closed }
                    Case.timeout(wait) { Got.nothing }
                }
                if case .nothing = got { continue }
                return got
            }
        default:
            for _ in 0..<polls {
                let got: Got = try select {
                    Case.receive(ch) { v in v.map { Got.value($0) } ?? Got.closed }
                    Case.default { Got.nothing }
                }
                if case .nothing = got { GreenThread.yield(); continue }
                return got
            }
        }
        return try ch.receive().map { .value($0) } ?? .closed
    }

    /// Every message source `p` sent (sequence numbers 0..<sent[p]) arrived
    /// exactly once over all receivers, nothing else arrived, and each
    /// receiver saw each source's messages in the order they were sent
    /// (a channel is FIFO and each source sends one at a time).
    private static func checkExactlyOnce(sent: [Int], received: [[Int]], _ what: String) throws {
        var seen = sent.map { [UInt8](repeating: 0, count: $0) }
        for (r, messages) in received.enumerated() {
            var last = [Int](repeating: -1, count: sent.count)
            for m in messages {
                let p = source(of: m), seq = sequence(of: m)
                try require(p >= 0 && p < sent.count && seq < sent[p],
                            "\(what): receiver \(r) got message \(seq) of source \(p), which was never sent")
                try require(seq > last[p], "\(what): receiver \(r) got message \(seq) of source \(p) after \(last[p])")
                last[p] = seq
                seen[p][seq] += 1
                try require(seen[p][seq] == 1, "\(what): message \(seq) of source \(p) delivered twice")
            }
        }
        for p in sent.indices {
            if let seq = seen[p].firstIndex(of: 0) {
                throw StressFailure(description: "\(what): message \(seq) of source \(p) was sent and never received (of \(sent[p]) sent)")
            }
        }
    }
}
