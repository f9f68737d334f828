// The stress soak's other workloads: nested spawns and spawn bursts,
// yields, sleeps and select timeouts (and a crowd of long sleepers, whose
// stacks compaction gives back), loopback TCP echo, `blocking` calls and
// generators. What each checks is in StressCommand.swift's header.
import CContext
import GreenThreads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

enum StressSystem {
    /// A spawn tree (depth and fan-out drawn, a yield here and there) whose
    /// leaves return their index, summed through every join; and a burst of
    /// short green threads under a WaitGroup.
    static func spawnTree(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let depth = d.size(1...4)
        let fanout = d.size(2...4)
        let leaves = Int(pow(Double(fanout), Double(depth)))
        let sum = try tree(depth: depth, fanout: fanout, label: 0, seed: d.seed(), ctx)
        try require(sum == leaves * (leaves - 1) / 2, "spawn tree \(fanout)^\(depth): leaves summed to \(sum), expected \(leaves * (leaves - 1) / 2)")

        let burst = d.size(100...4_000)
        let wg = WaitGroup()
        let total = StressCounter()
        for i in 0..<burst {
            ctx.spawns.add(1)
            wg.go {
                total.add(i)
                ctx.tick()
            }
        }
        try wg.wait()
        try require(total.value == burst * (burst - 1) / 2,
                    "spawn burst of \(burst): WaitGroup.wait returned before every thread had run")
    }

    private static func tree(depth: Int, fanout: Int, label: Int, seed: UInt64, _ ctx: StressContext) throws -> Int {
        ctx.tick()
        if depth == 0 { return label }
        var rng = StressRandom(seed: seed)
        let children = (0..<fanout).map { i in
            let childSeed = rng.next()
            let yields = rng.int(0...2)
            return ctx.spawn { () throws -> Int in
                for _ in 0..<yields { GreenThread.yield() }
                return try tree(depth: depth - 1, fanout: fanout, label: label * fanout + i, seed: childSeed, ctx)
            }
        }
        return try joinAll(children).reduce(0, +)
    }

    /// T threads each yield N times, counting every return.
    static func yields(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let threads = d.size(2...32)
        let perThread = d.size(100...4_000)
        let count = StressCounter()
        let handles = (0..<threads).map { _ in
            ctx.spawn {
                for _ in 0..<perThread {
                    GreenThread.yield()
                    count.add(1)
                }
                ctx.tick(perThread)
            }
        }
        try joinAll(handles)
        try require(count.value == threads * perThread,
                    "yields: \(count.value) of \(threads * perThread) returned")
    }

    /// Short sleeps and select timeouts on idle channels (each must last at
    /// least what it asked for; a select with default on idle channels must
    /// not wait), and, in some rounds, a crowd of 5,000 sleepers of 60 ms,
    /// enough for stack compaction: each keeps a pattern in its frame and
    /// checks it is intact after waking (its stack was copied out and back).
    static func timers(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let threads = d.size(10...200)
        let perThread = d.size(1...10)
        let crowd = d.envelope || d.rng.chance(0.15) ? 5_000 : 0
        let idle = Channel<Int>(capacity: d.rng.int(0...1))
        // Timers fire on the runtime's monotonic clock; the check reads the
        // same clock, with 50 us for the reads themselves.
        let slack: Int64 = 50_000
        let handles = (0..<threads).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> Void in
                var rng = StressRandom(seed: seed)
                for _ in 0..<perThread {
                    let micros = rng.int(0...2_000)
                    let t0 = gt_now_ns()
                    switch rng.int(0...2) {
                    case 0:
                        try GreenThread.sleep(for: .microseconds(micros))
                    case 1:
                        let timedOut = try select {
                            Case.receive(idle) { _ in false }
                            Case.timeout(.microseconds(micros)) { true }
                        }
                        try require(timedOut, "timers: a select on an idle channel received")
                    default:
                        let tookDefault = try select {
                            Case.receive(idle) { _ in false }
                            Case.default { true }
                        }
                        try require(tookDefault, "timers: a select with default on an idle channel did not take default")
                        ctx.tick()
                        continue
                    }
                    let elapsed = gt_now_ns() - t0
                    try require(elapsed + slack >= Int64(micros) * 1_000,
                                "timers: a \(micros) us wait ended after \(elapsed / 1_000) us")
                    ctx.tick()
                }
            }
        }
        let sleepers = (0..<crowd).map { i in
            ctx.spawn { () throws -> Void in
                try withUnsafeTemporaryAllocation(of: Int.self, capacity: 32) { frame in
                    for j in 0..<32 { frame[j] = i &* 31 &+ j }
                    try GreenThread.sleep(for: .milliseconds(60))
                    for j in 0..<32 where frame[j] != i &* 31 &+ j {
                        throw StressFailure(description: "timers: sleeper \(i)'s stack word \(j) changed across a 60 ms sleep")
                    }
                }
                ctx.tick()
            }
        }
        try joinAll(handles)
        try joinAll(sleepers)
    }

    /// A loopback echo server (a green thread per connection) and C clients,
    /// each writing L seeded bytes in random chunks from one green thread
    /// while it reads the echo back in another, then half-closing: every
    /// byte comes back, in order, and the server sees each client's end.
    static func tcpEcho(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let clients = d.size(1...12)
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        defer { listener.close() }
        let port = listener.port
        let server = ctx.spawn { () throws -> Int in
            var handlers: [JoinHandle<Int>] = []
            for _ in 0..<clients {
                let conn = try listener.accept(timeout: .seconds(20))
                handlers.append(ctx.spawn { () throws -> Int in
                    defer { conn.close() }
                    var echoed = 0
                    while true {
                        let bytes = try conn.read(upTo: 4_096)
                        if bytes.isEmpty { return echoed }
                        try conn.write(bytes)
                        echoed += bytes.count
                        ctx.tick()
                    }
                })
            }
            return try joinAll(handlers).reduce(0, +)
        }
        let lengths = (0..<clients).map { _ in d.size(1...65_536) }
        let handles = lengths.map { length in
            let seed = d.seed()
            return ctx.spawn { () throws -> Int in
                let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(20))
                defer { conn.close() }
                let writer = ctx.spawn { () throws -> Void in
                    var bytes = StressRandom(seed: seed)
                    var chunks = StressRandom(seed: ~seed)
                    var left = length
                    while left > 0 {
                        let n = min(left, chunks.int(1...8_192))
                        try conn.write((0..<n).map { _ in UInt8(truncatingIfNeeded: bytes.next()) })
                        left -= n
                    }
                    try conn.shutdown(.write)
                }
                var expected = StressRandom(seed: seed)
                var got = 0
                while true {
                    let bytes = try conn.read(upTo: 16_384, timeout: .seconds(20))
                    if bytes.isEmpty { break }
                    for b in bytes {
                        let want = UInt8(truncatingIfNeeded: expected.next())
                        try require(b == want, "tcp echo: byte \(got) of \(length) came back as \(b), sent \(want)")
                        got += 1
                    }
                    ctx.tick()
                }
                try writer.join()
                try require(got == length, "tcp echo: \(got) of \(length) bytes came back")
                return got
            }
        }
        let total = try joinAll(handles).reduce(0, +)
        let echoed = try server.join()
        try require(echoed == total, "tcp echo: the server echoed \(echoed) bytes, the clients got \(total)")
    }

    /// T threads each make R `GreenThread.blocking` calls that sleep the
    /// blocking thread up to 1 ms and return (or throw) a value computed
    /// from their input; the caller gets exactly that back.
    static func blocking(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let threads = d.size(2...24)
        let calls = d.size(1...8)
        let handles = (0..<threads).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> Void in
                var rng = StressRandom(seed: seed)
                for _ in 0..<calls {
                    let input = rng.next()
                    let nap = UInt32(rng.int(0...1_000))
                    let fails = rng.chance(0.2)
                    do {
                        let out = try GreenThread.blocking { () throws -> UInt64 in
                            usleep(nap)
                            if fails { throw StressBlockingError(value: input) }
                            return input &* 0x9E37_79B9_7F4A_7C15
                        }
                        try require(!fails && out == input &* 0x9E37_79B9_7F4A_7C15,
                                    "blocking: a call returned \(out) for input \(input)")
                    } catch let e as StressBlockingError {
                        try require(fails && e.value == input, "blocking: a call threw for input \(e.value), expected \(input)")
                    }
                    ctx.tick()
                }
            }
        }
        try joinAll(handles)
    }

    /// T threads each run G generators of 0-500 elements with a yield of
    /// the green thread between elements (so a generator resumes on
    /// whichever worker its thread moved to); some are consumed to the
    /// end (the sum is checked), some abandoned midway. Every body's
    /// `defer` must have run once its generator is gone.
    static func generators(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let threads = d.size(2...16)
        let perThread = d.size(1...20)
        let finished = StressCounter()
        let started = StressCounter()
        let handles = (0..<threads).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> Void in
                var rng = StressRandom(seed: seed)
                for _ in 0..<perThread {
                    let n = rng.int(0...500)
                    let take = rng.chance(0.3) ? rng.int(0...n) : n
                    do {
                        let gen = Generator<Int> { yield in
                            defer { finished.add(1) }
                            for i in 0..<n { try yield(i) }
                        }
                        var sum = 0
                        var taken = 0
                        while taken < take, let x = gen.next() {
                            sum += x
                            taken += 1
                            if x % 16 == 0 { GreenThread.yield() }
                        }
                        try require(taken == take && sum == take * (take - 1) / 2,
                                    "generators: took \(taken) of \(n) summing \(sum), expected \(take) summing \(take * (take - 1) / 2)")
                        if take == n { try require(gen.next() == nil, "generators: a generator of \(n) yielded more") }
                        // A body runs (and so has a defer to run) from its first next().
                        if take > 0 || take == n { started.add(1) }
                    }
                    ctx.tick()
                }
            }
        }
        try joinAll(handles)
        try require(finished.value == started.value,
                    "generators: \(finished.value) of \(started.value) started bodies unwound")
    }
}

private struct StressBlockingError: Error {
    let value: UInt64
}
