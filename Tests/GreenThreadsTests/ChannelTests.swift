import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// Counts live instances, for the select cases' values and captures (its
/// own counter: the suites run in parallel).
private final class Counted: @unchecked Sendable {
    static let live = Atomic<Int>(0)
    let n: Int
    init(_ n: Int) { self.n = n; Self.live.add(1, ordering: .relaxed) }
    deinit { Self.live.subtract(1, ordering: .relaxed) }
}

/// Counts live instances, to check channels drop what they buffer.
private final class Tracked: @unchecked Sendable {
    static let live = Atomic<Int>(0)
    let n: Int
    init(_ n: Int) { self.n = n; Self.live.add(1, ordering: .relaxed) }
    deinit { Self.live.subtract(1, ordering: .relaxed) }
}

@Suite("Channel", .serialized)
struct ChannelTests {
    @Test func unbufferedSendCompletesOnlyWhenAReceiverTookTheValue() throws {
        let (sentEarly, received, sentLate) = try onRuntime { () throws -> (Bool, Int?, Bool) in
            let ch = Channel<Int>()
            let sent = Atomic<Bool>(false)
            let sender = go { () throws in
                try ch.send(42)
                sent.store(true, ordering: .releasing)
            }
            try GreenThread.sleep(for: .milliseconds(20))
            let early = sent.load(ordering: .acquiring)
            let v = try ch.receive()
            try sender.join()
            return (early, v, sent.load(ordering: .acquiring))
        }
        #expect(!sentEarly)
        #expect(received == 42)
        #expect(sentLate)
    }

    @Test(arguments: [1, 2])
    func unbufferedHandoffKeepsOrder(workers: Int) throws {
        let got = try onRuntime(workers: workers) { () throws -> [Int] in
            let ch = Channel<Int>(capacity: 0)
            go { () throws in
                for i in 0..<2_000 { try ch.send(i) }
                ch.close()
            }
            return Array(ch)
        }
        #expect(got == Array(0..<2_000))
    }

    @Test func bufferedChannelIsFIFOAndBounded() throws {
        // Plain OS thread: nothing here needs to wait.
        let ch = Channel<Int>(capacity: 4)
        #expect(ch.capacity == 4)
        for i in 0..<4 { #expect(ch.trySend(i)) }
        #expect(!ch.trySend(99))
        #expect(ch.count == 4)
        #expect(try ch.receive() == 0)
        #expect(ch.trySend(4))
        var out: [Int] = []
        while let v = ch.tryReceive() { out.append(v) }
        #expect(out == [1, 2, 3, 4])
        #expect(ch.count == 0)
        #expect(ch.tryReceive() == nil)
    }

    @Test func bufferedFIFOAcrossGreenThreads() throws {
        let got = try onRuntime { () throws -> [Int] in
            let ch = Channel<Int>(capacity: 16)
            go { () throws in
                for i in 0..<5_000 { try ch.send(i) }
                ch.close()
            }
            var out: [Int] = []
            for v in ch { out.append(v) }
            return out
        }
        #expect(got == Array(0..<5_000))
    }

    @Test func closeDrainsThenReturnsNilAndSendThrows() throws {
        let ch = Channel<String>(capacity: 3)
        try ch.send("a")
        try ch.send("b")
        ch.close()
        ch.close()  // idempotent
        #expect(ch.isClosed)
        #expect(throws: ChannelError.closed) { try ch.send("c") }
        #expect(!ch.trySend("c"))
        #expect(try ch.receive() == "a")
        #expect(ch.tryReceive() == "b")
        #expect(try ch.receive() == nil)
        #expect(try ch.receive() == nil)
        #expect(try ch.receive() == nil)
    }

    @Test func closeWakesParkedReceiversAndSenders() throws {
        let (receiverResults, senderErrors, waitersLeft) = try onRuntime { () throws -> ([Int?], [Bool], Int) in
            let recv = Channel<Int>()
            let send = Channel<Int>()
            let receivers = (0..<3).map { _ in go { try recv.receive() } }
            let senders = (0..<3).map { i in
                go { () -> Bool in
                    do { try send.send(i); return false } catch ChannelError.closed { return true } catch { return false }
                }
            }
            try GreenThread.sleep(for: .milliseconds(20))
            recv.close()
            send.close()
            return (try joinAll(receivers), try joinAll(senders), recv.waiterCount + send.waiterCount)
        }
        #expect(receiverResults == [nil, nil, nil])
        #expect(senderErrors == [true, true, true])
        #expect(waitersLeft == 0)
    }

    @Test func eightProducersEightConsumersLoseAndDuplicateNothing() throws {
        let producers = 8, consumers = 8, perProducer = 100_000
        for capacity in [0, 128] {
            let chunks = try onRuntime(workers: 2) { () throws -> [[Int]] in
                let ch = Channel<Int>(capacity: capacity)
                let wg = WaitGroup()
                for p in 0..<producers {
                    wg.go {
                        for i in 0..<perProducer { try ch.send(p * perProducer + i) }
                    }
                }
                let cs = (0..<consumers).map { _ in
                    go { () -> [Int] in
                        var mine: [Int] = []
                        mine.reserveCapacity(perProducer * 2)
                        for v in ch { mine.append(v) }
                        return mine
                    }
                }
                try wg.wait()
                ch.close()
                return try joinAll(cs)
            }
            var seen = [Bool](repeating: false, count: producers * perProducer)
            var duplicates = 0, total = 0
            for chunk in chunks {
                // Each producer's values reach any one consumer in order.
                var lastOf = [Int](repeating: -1, count: producers)
                var ordered = true
                for v in chunk {
                    total += 1
                    if seen[v] { duplicates += 1 }
                    seen[v] = true
                    let p = v / perProducer
                    if v <= lastOf[p] { ordered = false }
                    lastOf[p] = v
                }
                #expect(ordered, "capacity \(capacity): a consumer saw one producer's values out of order")
            }
            #expect(duplicates == 0, "capacity \(capacity)")
            #expect(total == producers * perProducer, "capacity \(capacity)")
            #expect(!seen.contains(false), "capacity \(capacity)")
        }
    }

    /// The shape of a typical user program, and the one scripts/sanitize.sh
    /// must find clean: producers that outnumber the workers, each parking
    /// and migrating, and one consumer in the main green thread.
    @Test(arguments: [0, 16])
    func eightProducersOneConsumerOverTwoWorkers(capacity: Int) throws {
        let producers = 8, perProducer = 2_000
        let (count, sum) = try onRuntime(workers: 2) { () throws -> (Int, Int) in
            let ch = Channel<Int>(capacity: capacity)
            let wg = WaitGroup()
            for p in 0..<producers {
                wg.go {
                    for i in 0..<perProducer { try ch.send(p * perProducer + i) }
                }
            }
            go { () throws in
                try wg.wait()
                ch.close()
            }
            var count = 0, sum = 0
            for v in ch {
                count += 1
                sum += v
            }
            return (count, sum)
        }
        let n = producers * perProducer
        #expect(count == n)
        #expect(sum == n * (n - 1) / 2)
    }

    @Test func cancellationWakesParkedSendAndReceive() throws {
        let (recv, recvThrows, send, waiters) = try onRuntime { () throws -> (Bool, Bool, Bool, Int) in
            let ch = Channel<Int>()
            let r = go { try ch.receive() }
            let rt = go { () -> Bool in
                do { _ = try ch.receive(); return false } catch is CancellationError { return true }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            r.cancel()
            rt.cancel()
            // A cancelled receive throws: it never passes for a closed channel.
            var recvResult = false
            do { _ = try r.join() } catch is CancellationError { recvResult = true }
            let recvThrew = try rt.join()
            let full = Channel<Int>()
            let s = go { () -> Bool in
                do { try full.send(1); return false } catch is CancellationError { return true }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            s.cancel()
            let sendThrew = try s.join()
            return (recvResult, recvThrew, sendThrew, ch.waiterCount + full.waiterCount)
        }
        #expect(recv)
        #expect(recvThrows)
        #expect(send)
        #expect(waiters == 0)
    }

    @Test func aCancelledThreadStillTakesAReadyValue() throws {
        let v = try onRuntime { () throws -> Int? in
            let ch = Channel<Int>(capacity: 1)
            try ch.send(7)
            let h = go { () -> Int? in
                while !GreenThread.isCancelled { GreenThread.yield() }
                return try ch.receive()
            }
            h.cancel()
            return try h.join()
        }
        #expect(v == 7)
    }

    @Test func greenAndOSThreadsTalkBothWays() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let toOS = Channel<Int>()
        let toGreen = Channel<Int>(capacity: 2)
        // A green thread echoes whatever the OS thread sends, plus one.
        let echo = rt.spawn { () throws -> Int in
            var n = 0
            for v in toGreen {
                try toOS.send(v + 1)
                n += 1
            }
            return n
        }
        var sum = 0
        for i in 0..<2_000 {
            try toGreen.send(i)              // blocks this OS thread when full
            sum += try toOS.receive() ?? -1_000_000   // blocks until the echo
        }
        toGreen.close()
        #expect(try echo.join() == 2_000)
        #expect(sum == (1...2_000).reduce(0, +))
        #expect(toOS.waiterCount == 0 && toGreen.waiterCount == 0)
    }

    @Test func bufferedValuesAreReleasedWithTheChannel() throws {
        let before = Tracked.live.load(ordering: .relaxed)
        do {
            let ch = Channel<Tracked>(capacity: 8)
            for i in 0..<5 { try ch.send(Tracked(i)) }
            #expect(try ch.receive()?.n == 0)
            #expect(Tracked.live.load(ordering: .relaxed) == before + 4)
        }
        #expect(Tracked.live.load(ordering: .relaxed) == before)
    }

    @Test func negativeCapacityIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            _ = Channel<Int>(capacity: -1)
        }
    }
}

@Suite("Select", .serialized)
struct SelectTests {
    @Test func picksUniformlyAmongReadyCases() throws {
        let rounds = 100_000
        let (a, b) = try onRuntime { () throws -> (Int, Int) in
            let x = Channel<Int>(capacity: 1)
            let y = Channel<Int>(capacity: 1)
            var a = 0, b = 0
            for _ in 0..<rounds {
                _ = x.trySend(1)
                _ = y.trySend(2)
                try select {
                    Case.receive(x) { _ in a += 1 }
                    Case.receive(y) { _ in b += 1 }
                }
            }
            return (a, b)
        }
        #expect(a + b == rounds)
        #expect((45_000...55_000).contains(a), "x chosen \(a) times of \(rounds)")
        #expect((45_000...55_000).contains(b), "y chosen \(b) times of \(rounds)")
    }

    @Test func fairAmongThreeReadyCasesToo() throws {
        // A random rotation would favour the case after a never-ready one.
        let rounds = 30_000
        let counts = try onRuntime { () throws -> [Int] in
            let chans = (0..<3).map { _ in Channel<Int>(capacity: 1) }
            let never = Channel<Int>()
            var counts = [0, 0, 0]
            for _ in 0..<rounds {
                for c in chans { _ = c.trySend(0) }
                try select {
                    Case.receive(never) { _ in counts[0] += 1_000_000 }
                    for (i, c) in chans.enumerated() {
                        Case.receive(c) { _ in counts[i] += 1 }
                    }
                }
            }
            return counts
        }
        #expect(counts.reduce(0, +) == rounds)
        for c in counts { #expect((9_000...11_000).contains(c), "\(counts)") }
    }

    @Test func conditionalCasesAreIncludedOrLeftOut() throws {
        let got = try onRuntime { () throws -> [String] in
            let a = Channel<Int>(capacity: 1), b = Channel<Int>(capacity: 1)
            try a.send(1)
            try b.send(2)
            var out: [String] = []
            for (useA, useB) in [(false, true), (true, false), (false, false)] {
                out.append(try select {
                    if useA { Case.receive(a) { v in "a\(v!)" } }
                    if useB {
                        Case.receive(b) { v in "b\(v!)" }
                    } else {
                        Case.timeout(.milliseconds(1)) { "timeout" }
                    }
                    Case.default { "default" }
                })
            }
            return out
        }
        #expect(got == ["b2", "a1", "default"])
    }

    @Test func timeoutFiresWhenNothingIsReady() throws {
        try expectTimely { () throws -> [TimingBound] in
            let (result, ns, waiters) = try onRuntime { () throws -> (String, Int64, Int) in
                let ch = Channel<Int>()
                let start = gt_now_ns()
                let r = try select {
                    Case.receive(ch) { v in "got \(v ?? -1)" }
                    Case.timeout(.milliseconds(30)) { "timeout" }
                    Case.timeout(.milliseconds(5_000)) { "late timeout" }
                }
                return (r, gt_now_ns() - start, ch.waiterCount)
            }
            #expect(result == "timeout")
            #expect(ns >= 29_000_000, "the 30 ms timeout fired after \(ns / 1_000_000) ms")
            #expect(waiters == 0)
            return [.below("a select's 30 ms timeout", ns, 2_000_000_000)]
        }
    }

    @Test func timeoutDoesNotFireWhenACaseIsReadyInTime() throws {
        let r = try onRuntime { () throws -> Int in
            let ch = Channel<Int>()
            go { () throws in
                try GreenThread.sleep(for: .milliseconds(5))
                try ch.send(5)
            }
            return try select {
                Case.receive(ch) { v in v ?? -1 }
                Case.timeout(.seconds(10)) { -2 }
            }
        }
        #expect(r == 5)
    }

    @Test func defaultRunsOnlyWhenNothingIsReady() throws {
        let (empty, ready, sentTo) = try onRuntime { () throws -> (String, String, Int?) in
            let ch = Channel<Int>(capacity: 1)
            let empty = try select {
                Case.receive(ch) { _ in "received" }
                Case.default { "default" }
            }
            try ch.send(3)
            let ready = try select {
                Case.receive(ch) { v in "received \(v!)" }
                Case.default { "default" }
            }
            _ = try select {
                Case.send(ch, 9) { "sent" }
                Case.default { "default" }
            }
            return (empty, ready, ch.tryReceive())
        }
        #expect(empty == "default")
        #expect(ready == "received 3")
        #expect(sentTo == 9)
    }

    @Test func sendCaseHandsTheValueToAParkedReceiver() throws {
        let (got, which) = try onRuntime { () throws -> (Int?, String) in
            let a = Channel<Int>()
            let b = Channel<Int>()
            let r = go { try b.receive() }
            let which = try select {
                Case.send(a, 1) { "a" }
                Case.send(b, 2) { "b" }
            }
            return (try r.join(), which)
        }
        #expect(which == "b")
        #expect(got == 2)
    }

    @Test func losingRegistrationsAreWithdrawn() throws {
        let (value, waitersA, waitersB, waitersC) = try onRuntime { () throws -> (Int, Int, Int, Int) in
            let a = Channel<Int>(), b = Channel<Int>(), c = Channel<Int>(capacity: 1)
            try c.send(0)  // c full: the send case parks too
            let sel = go { () throws -> Int in
                try select {
                    Case.receive(a) { v in v! }
                    Case.receive(b) { v in v! + 1_000 }
                    Case.send(c, 1) { -1 }
                }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            // Registered on all three while parked.
            #expect(a.waiterCount == 1 && b.waiterCount == 1 && c.waiterCount == 1)
            try a.send(7)
            let v = try sel.join()
            return (v, a.waiterCount, b.waiterCount, c.waiterCount)
        }
        #expect(value == 7)
        #expect(waitersA == 0 && waitersB == 0 && waitersC == 0)
    }

    @Test func racingSendersFireExactlyOneCaseEachTime() throws {
        // Two senders race into one select per round; the loser's value must
        // stay with its sender (received afterwards), and no registration may
        // outlive the select.
        let rounds = 2_000
        let (total, stale) = try onRuntime(workers: 2) { () throws -> (Int, Int) in
            let a = Channel<Int>(), b = Channel<Int>()
            var total = 0, stale = 0
            for i in 0..<rounds {
                let sa = go { try a.send(i) }
                let sb = go { try b.send(i) }
                let first = try select {
                    Case.receive(a) { v in (v!, "a") }
                    Case.receive(b) { v in (v!, "b") }
                }
                let second = first.1 == "a" ? try b.receive()! : try a.receive()!
                try sa.join()
                try sb.join()
                total += first.0 + second
                stale += a.waiterCount + b.waiterCount
            }
            return (total, stale)
        }
        #expect(total == 2 * (0..<rounds).reduce(0, +))
        #expect(stale == 0)
    }

    @Test func manySelectorsManySendersNothingLost() throws {
        let perSender = 5_000, senders = 6
        let (sum, count, leftovers) = try onRuntime(workers: 2) { () throws -> (Int, Int, Int) in
            let chans = (0..<3).map { i in Channel<Int>(capacity: i) }  // 0, 1 and 2
            let done = Channel<Int>()
            let wg = WaitGroup()
            for s in 0..<senders {
                wg.go {
                    for i in 0..<perSender { try chans[(s + i) % 3].send(1 + i % 7) }
                }
            }
            let selectors = (0..<4).map { _ in
                go { () throws -> (Int, Int) in
                    var sum = 0, n = 0
                    while true {
                        let stop = try select {
                            for c in chans {
                                Case.receive(c) { v in sum += v ?? 0; n += 1; return false }
                            }
                            Case.receive(done) { _ in true }
                        }
                        if stop { return (sum, n) }
                    }
                }
            }
            try wg.wait()
            done.close()
            let results = try joinAll(selectors)
            // Closing `done` may stop a selector before a buffered value.
            var rest = 0, restN = 0
            for c in chans { while let v = c.tryReceive() { rest += v; restN += 1 } }
            let waiters = chans.reduce(0) { $0 + $1.waiterCount } + done.waiterCount
            return (results.reduce(0) { $0 + $1.0 } + rest, results.reduce(0) { $0 + $1.1 } + restN, waiters)
        }
        #expect(count == senders * perSender)
        #expect(sum == senders * (0..<perSender).reduce(0) { $0 + 1 + $1 % 7 })
        #expect(leftovers == 0)
    }

    @Test func closedChannelsAreReady() throws {
        let (recv, sendError) = try onRuntime { () throws -> (Int?, Bool) in
            let a = Channel<Int>(), b = Channel<Int>()
            a.close()
            let r = try select {
                Case.receive(a) { v in v }
                Case.receive(b) { _ in 99 }
            }
            b.close()
            var threw = false
            do {
                try select { Case.send(b, 1) { () } }
            } catch ChannelError.closed {
                threw = true
            }
            return (r, threw)
        }
        #expect(recv == nil)
        #expect(sendError)
    }

    @Test func closeWakesAParkedSelect() throws {
        let r = try onRuntime { () throws -> String in
            let a = Channel<Int>(), b = Channel<Int>()
            let h = go { () throws -> String in
                try select {
                    Case.receive(a) { v in "a \(String(describing: v))" }
                    Case.receive(b) { v in "b \(String(describing: v))" }
                }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            b.close()
            return try h.join()
        }
        #expect(r == "b nil")
    }

    @Test func aSelectDoesNotRendezvousWithItself() throws {
        let r = try onRuntime { () throws -> String in
            let ch = Channel<Int>()
            return try select {
                Case.send(ch, 1) { "sent" }
                Case.receive(ch) { _ in "received" }
                Case.timeout(.milliseconds(20)) { "timeout" }
            }
        }
        #expect(r == "timeout")
    }

    @Test func cancellationWakesAParkedSelect() throws {
        let (threw, waiters) = try onRuntime { () throws -> (Bool, Int) in
            let a = Channel<Int>(), b = Channel<Int>()
            let h = go { () -> Bool in
                do {
                    try select {
                        Case.receive(a) { _ in () }
                        Case.send(b, 1) { () }
                        Case.timeout(.seconds(3_600)) { () }
                    }
                    return false
                } catch is CancellationError {
                    return true
                } catch {
                    return false
                }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            h.cancel()
            let threw = try h.join()
            return (threw, a.waiterCount + b.waiterCount)
        }
        #expect(threw)
        #expect(waiters == 0)
    }

    @Test func selectWithNoCasesThrows() throws {
        #expect(throws: SelectError.noCases) {
            let _: Int = try select {}
        }
        let none: [Channel<Int>] = []
        #expect(throws: SelectError.noCases) {
            try select {
                for c in none { Case.receive(c) { v in v } }
            }
        }
    }

    @Test func groupedCasesRunTheBodyOfTheCaseThatHappened() throws {
        // The chosen operation is found again by its position among the
        // channel cases, through nested blocks, `if`/`else` and `for`.
        let got = try onRuntime { () throws -> [Int] in
            let chans = (0..<6).map { _ in Channel<Int>(capacity: 1) }
            let full = Channel<Int>(capacity: 1)
            try full.send(0)
            var out: [Int] = []
            for round in 0..<30 {
                let t = round % 6
                try chans[t].send(round)
                out.append(try select {
                    Case.send(full, 1) { -2 }
                    Case.receive(chans[0]) { v in v! }
                    for i in 1..<4 {
                        if i % 2 == 1 {
                            Case.receive(chans[i]) { v in 1_000 * i + v! }
                        } else {
                            Case.timeout(.seconds(60)) { -1 }
                            Case.receive(chans[i]) { v in 1_000 * i + v! }
                        }
                    }
                    if round >= 0 {
                        Case.receive(chans[4]) { v in 4_000 + v! }
                        Case.receive(chans[5]) { v in 5_000 + v! }
                    }
                })
            }
            return out
        }
        #expect(got == (0..<30).map { 1_000 * ($0 % 6) + $0 })
    }

    @Test func selectCasesReleaseTheirValuesAndCaptures() throws {
        let received = try onRuntime { () throws -> [Int] in
            let full = Channel<Counted>(capacity: 1)
            try full.send(Counted(-1))
            let ready = Channel<Counted>(capacity: 1)
            let unbuffered = Channel<Counted>()
            var got: [Int] = []
            for i in 0..<50 {
                let captured = Counted(1_000 + i)
                try ready.send(Counted(i))
                // The send case loses: its value and the bodies' captures
                // must be released with the cases.
                got.append(try select {
                    Case.send(full, Counted(-2)) { captured.n }
                    Case.receive(ready) { v in v!.n }
                })
                // A parked select whose send case fires: the receiver gets
                // its own copy of the reference, the box still drops its own.
                let h = go { () throws -> Int in try unbuffered.receive()!.n }
                got.append(try select {
                    Case.send(unbuffered, Counted(100 + i)) { -1 }
                    Case.timeout(.seconds(60)) { -3 }
                })
                got.append(try h.join())
            }
            return got
        }
        #expect(received == (0..<50).flatMap { [$0, -1, 100 + $0] })
        #expect(Counted.live.load(ordering: .relaxed) == 0)
    }

    @Test func selectReleasesItsChannelsAndBodiesOnEveryWayOut() throws {
        // A case retains its channel and a capturing body by hand, and the
        // select releases them (SelectClauses.swift, "Clauses are plain
        // bits"). A channel made inside the braces is held by nothing else:
        // it must live through the select and die after it, which the
        // `Counted` value it still buffers shows.
        struct Boom: Error {}
        @Sendable func holding(_ values: Int...) -> Channel<Counted> {
            let c = Channel<Counted>(capacity: max(values.count, 1))
            for v in values { _ = c.trySend(Counted(v)) }
            return c
        }
        @Sendable func closedHolding(_ v: Int) -> Channel<Counted> {
            let c = holding(v)
            c.close()
            return c
        }
        let (results, releasedLater) = try onRuntime(workers: 1) { () throws -> ([Int], Bool) in
            var results: [Int] = []
            let token = Counted(-100)
            // Fast path, on a temporary channel.
            results.append(try select {
                Case.receive(holding(1, 2)) { v in v!.n + token.n }
            })
            // Default, and a losing send case on a full temporary channel.
            results.append(try select {
                Case.send(holding(3), Counted(4)) { token.n }
                Case.default { 5 + token.n }
            })
            // A select that parks and times out.
            results.append(try select {
                Case.send(holding(6), Counted(7)) { token.n }
                Case.timeout(.milliseconds(2)) { 8 + token.n }
            })
            // A body that throws.
            do {
                _ = try select {
                    Case.receive(holding(9, 10)) { v -> Int in
                        _ = token
                        throw Boom()
                    }
                }
                results.append(-1)
            } catch is Boom {
                results.append(11)
            }
            // A send case on a closed temporary channel throws.
            do {
                _ = try select { Case.send(closedHolding(12), Counted(13)) { token.n } }
                results.append(-1)
            } catch ChannelError.closed {
                results.append(14)
            }
            // A parked select woken by a sender; the channel is ours, and is
            // gone once we drop it.
            weak var weakChannel: Channel<Counted>?
            do {
                let later = Channel<Counted>()
                weakChannel = later
                let h = go { () throws in
                    try GreenThread.sleep(for: .milliseconds(2))
                    try later.send(Counted(15))
                }
                results.append(try select {
                    Case.receive(later) { v in v!.n + token.n }
                })
                try h.join()
            }
            return (results, weakChannel == nil)
        }
        #expect(results == [1 - 100, 5 - 100, 8 - 100, 11, 14, 15 - 100])
        #expect(releasedLater)
        #expect(Counted.live.load(ordering: .relaxed) == 0)
    }

    @Test func selectFromAPlainOSThread() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let a = Channel<Int>(), b = Channel<Int>()
        let h = rt.spawn { () throws in
            try GreenThread.sleep(for: .milliseconds(5))
            try b.send(11)
        }
        let r = try select {
            Case.receive(a) { v in v ?? -1 }
            Case.receive(b) { v in (v ?? -1) * 2 }
        }
        try h.join()
        #expect(r == 22)
        let t = try select {
            Case.receive(a) { _ in false }
            Case.timeout(.milliseconds(5)) { true }
        }
        #expect(t)
        #expect(a.waiterCount == 0 && b.waiterCount == 0)
    }
}
