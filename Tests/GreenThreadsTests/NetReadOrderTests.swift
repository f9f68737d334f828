import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// The order a worker serves ready connections in, and stream reads that
/// park before their syscall once the last read drained the socket
/// (Net/StreamRead.swift): data must never be left unread behind a parked
/// reader, whatever the read sizes, the timing and the number of workers.
@Suite("NetReadOrder")
struct NetReadOrderTests {
    /// One worker, busy while 24 parked readers become ready one after the
    /// other: the next poll collects them as one batch, and they run in the
    /// order they became ready (before, the deque ran a batch newest first).
    @Test(arguments: [1, 2, 3])
    func aPolledBatchRunsInReadinessOrder(round: Int) throws {
        let n = 24
        let rt = Runtime(configuration: .init(workers: 1, preemptionThreshold: nil, handoffThreshold: nil))
        defer { rt.shutdown() }
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        defer { listener.close() }
        let parked = Atomic<Int>(0)
        let busy = Atomic<Int>(0)  // 1: spinning, 2: told to stop
        let served = Mutex<[UInt8]>([])
        let server = rt.spawn { () throws in
            var readers: [JoinHandle<Void>] = []
            for _ in 0..<n {
                let conn = try listener.accept(timeout: .seconds(10))
                readers.append(go {
                    defer { conn.close() }
                    parked.add(1, ordering: .relaxed)
                    let byte = try conn.read(upTo: 1, timeout: .seconds(10))
                    served.withLock { $0.append(contentsOf: byte) }
                })
            }
            for r in readers { try r.join() }
        }
        // The client side on this OS thread (its calls block it).
        var clients: [TCPStream] = []
        for _ in 0..<n { clients.append(try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))) }
        defer { for c in clients { c.close() } }
        let start = gt_now_ns()
        while parked.load(ordering: .relaxed) < n, gt_now_ns() - start < 10_000_000_000 { usleep(1000) }
        usleep(20_000)  // each reader is parked in epoll by now
        // Keep the only worker inside one green thread while every socket
        // becomes readable, in order.
        let spinner = rt.spawn {
            busy.store(1, ordering: .releasing)
            let deadline = gt_now_ns() + 2_000_000_000
            while busy.load(ordering: .acquiring) != 2, gt_now_ns() < deadline {}
        }
        while busy.load(ordering: .acquiring) != 1 { usleep(100) }
        for (i, c) in clients.enumerated() { try c.write([UInt8(i)]) }
        busy.store(2, ordering: .releasing)
        try spinner.join()
        try server.join()
        let order = served.withLock { $0 }
        #expect(order.sorted() == (0..<n).map { UInt8($0) })
        // Every 31st pick (the fairness tick) takes the deque's far end,
        // which holds the batch's newest: one out of place per tick (the
        // readers' exits and the server's joins are picks too). Run newest
        // first, the batch would show 23 descents.
        let descents = zip(order, order.dropFirst()).filter { $0 > $1 }.count
        #expect(descents <= 3, "served in \(order) (round \(round))")
    }

    /// A busy worker's periodic poll (`pollReady`, as its injector tick
    /// makes it) while its deque still holds work: what the poll readied
    /// runs after everything queued before it, an earlier poll's batch
    /// included, each batch in readiness order (Worker+Netpoll.swift,
    /// "First ready, first served"). Pushed on top of the LIFO deque, the
    /// second batch would run before the first.
    @Test func aLaterPollsBatchRunsAfterOlderWork() throws {
        let perBatch = 6
        let rt = Runtime(configuration: .init(workers: 1, preemptionThreshold: nil, handoffThreshold: nil))
        defer { rt.shutdown() }
        var pipes: [(r: Int32, w: Int32)] = []
        for _ in 0..<(2 * perBatch) {
            var fds: [Int32] = [0, 0]
            try #require(pipe(&fds) == 0)
            pipes.append((fds[0], fds[1]))
        }
        defer { for p in pipes { close(p.r); close(p.w) } }
        let snapshot = pipes
        let (order, polled) = try rt.run { () throws -> ([Int], [Int]) in
            let ran = Mutex<[Int]>([])
            let readers = snapshot.enumerated().map { i, p in go { () throws in
                try GreenThread.waitReadable(p.r, timeout: .seconds(10))
                ran.withLock { $0.append(i) }
            } }
            return try Unmanaged<Worker>.fromOpaque(gt_current_worker()!)._withUnsafeGuaranteedRef { w throws in
                // One worker: once we run again, every reader that waits
                // has switched out, parked in the netpoller.
                while w.poller.ioWaiters.load(ordering: .relaxed) < snapshot.count { GreenThread.yield() }
                // Older work, queued before both polls.
                let queued = (0..<3).map { j in go { ran.withLock { $0.append(100 + j) } } }
                // No tick duty (a fairness pick from the deque's far end)
                // for the next 31 picks: more than this test makes.
                w.local.pointee.tick = 0
                Worker.scheduleTickDuty(w.local)
                var byte: UInt8 = 1
                var polled: [Int] = []
                for batch in 0..<2 {
                    for p in snapshot[(batch * perBatch)..<((batch + 1) * perBatch)] { _ = write(p.w, &byte, 1) }
                    polled.append(w.pollReady(keepOne: false))
                }
                // The last to run first: the other joins then find them done.
                for r in readers.reversed() { try r.join() }
                for q in queued { try q.join() }
                return (ran.withLock { $0 }, polled)
            }
        }
        #expect(polled == [perBatch, perBatch])
        #expect(Set(order.prefix(3)) == [100, 101, 102], "ran in \(order)")
        #expect(Array(order.dropFirst(3)) == Array(0..<(2 * perBatch)), "ran in \(order)")
    }

    /// Reads that fill their buffer leave the rest in the socket, with no
    /// edge to come: the next read must take it at once, not park. Then a
    /// short read, and data that arrives later, wakes the parked reader.
    @Test(arguments: [1, 2])
    func fullReadsReadOnShortReadsParkFirst(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let got = try rt.run { () throws -> [Int] in
            let (listener, client) = try loopbackPair()
            defer { client.close(); listener.close() }
            let conn = try listener.accept(timeout: .seconds(5))
            defer { conn.close() }
            // Other runnable threads on the reader's worker: the condition
            // under which a read may park first.
            let stop = Atomic<Bool>(false)
            let yielders = (0..<2).map { _ in go { while !stop.load(ordering: .relaxed) { GreenThread.yield() } } }
            defer {
                stop.store(true, ordering: .relaxed)
                for y in yielders { _ = try? y.join() }
            }
            var sizes: [Int] = []
            try client.write([UInt8](repeating: 7, count: 95))
            usleep(10_000)
            for _ in 0..<10 { sizes.append(try conn.read(upTo: 10, timeout: .seconds(5)).count) }
            // 9 full reads and a short one: the socket is known empty.
            let drained = conn.descriptor.streamDrained.load(ordering: .relaxed)
            #expect(drained)
            // The socket is drained; more comes after a pause, while nobody
            // waits (its edge is remembered or still in epoll).
            let writer = go {
                usleep(20_000)
                try client.write([UInt8](repeating: 8, count: 3))
            }
            sizes.append(try conn.read(upTo: 10, timeout: .seconds(5)).count)
            try writer.join()
            return sizes
        }
        #expect(got.reduce(0, +) == 98)
        #expect(Array(got.prefix(9)) == Array(repeating: 10, count: 9))
    }

    /// Echo under load with random message sizes and pauses, on several
    /// connections at once: nothing is lost or stuck, in debug and release,
    /// with one worker (reads park first behind the other connections) and
    /// with two (the reader and the edge on different workers).
    @Test(arguments: [(1, UInt64(1)), (1, 2), (2, 3), (2, 4)])
    func echoWithRandomSizesLosesNothing(workers: Int, seed: UInt64) throws {
        let rt = Runtime(configuration: .init(workers: workers, seed: seed))
        defer { rt.shutdown() }
        let connections = 8
        let messages = 300
        let totals = try rt.run { () throws -> [Int] in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            defer { listener.close() }
            let server = go { () throws in
                var echoes: [JoinHandle<Void>] = []
                for _ in 0..<connections {
                    let conn = try listener.accept(timeout: .seconds(10))
                    echoes.append(go {
                        defer { conn.close() }
                        var buffer = [UInt8](repeating: 0, count: 64)
                        while true {
                            let n = try conn.read(into: &buffer, timeout: .seconds(10))
                            if n == 0 { return }
                            try conn.write(Array(buffer[..<n]))
                        }
                    })
                }
                for e in echoes { try e.join() }
            }
            let clients = (0..<connections).map { c in go { () throws -> Int in
                var mix = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(c)
                func next(_ n: UInt64) -> Int {
                    mix = mix &* 6364136223846793005 &+ 1442695040888963407
                    return Int((mix >> 33) % n)
                }
                let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
                defer { s.close() }
                var echoed = 0
                for m in 0..<messages {
                    // 1 to 150 bytes: some echoes take the server two reads.
                    let size = 1 + next(150)
                    let message = [UInt8](repeating: UInt8(truncatingIfNeeded: m), count: size)
                    try s.write(message)
                    if next(8) == 0 { usleep(UInt32(next(300))) }
                    let back = try s.readExactly(size, timeout: .seconds(10))
                    #expect(back == message)
                    echoed += back.count
                }
                try s.shutdown(.write)
                return echoed
            } }
            let totals = try clients.map { try $0.join() }
            try server.join()
            return totals
        }
        #expect(totals.count == connections)
        #expect(totals.allSatisfy { $0 > messages })
    }

    /// Data and the peer's FIN announced by one edge: the read that takes
    /// the data is short, and the next must see the end of the stream at
    /// once (parking first, nothing would ever wake it).
    @Test(arguments: [1, 2])
    func dataThenFinInOneEdgeEndsTheStream(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let results = try rt.run { () throws -> [Int] in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            defer { listener.close() }
            var results: [Int] = []
            for _ in 0..<20 {
                let client = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
                let conn = try listener.accept(timeout: .seconds(5))
                // The server parks on its read (nothing has come yet).
                let server = go { () throws -> Int in
                    defer { conn.close() }
                    var got = try conn.read(upTo: 64, timeout: .seconds(5)).count
                    while true {
                        let more = try conn.read(upTo: 64, timeout: .seconds(5))
                        if more.isEmpty { return got }
                        got += more.count
                    }
                }
                usleep(2_000)
                // Data and FIN back to back, before any worker polls.
                try client.write(Array("abc".utf8))
                try client.shutdown(.write)
                results.append(try server.join())
                client.close()
            }
            return results
        }
        #expect(results == Array(repeating: 3, count: 20))
    }

    /// Urgent data stops a TCP read at its mark with bytes left behind it
    /// and no edge to come: its EPOLLPRI turns parking first off, so the
    /// bytes after the mark are read at once instead of waiting for more.
    @Test(arguments: [1, 2])
    func urgentDataTurnsTheHintOff(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        let (first, second, flagged) = try rt.run { () throws -> ([UInt8], [UInt8], Bool) in
            let (listener, client) = try loopbackPair()
            defer { client.close(); listener.close() }
            let conn = try listener.accept(timeout: .seconds(5))
            defer { conn.close() }
            try client.write(Array("abc".utf8))
            #expect(try conn.read(upTo: 64, timeout: .seconds(5)) == Array("abc".utf8))
            // "12", an urgent "U", "34": all queued before the next read.
            let fd = client.fileDescriptor
            for (bytes, flags) in [("12", Int32(0)), ("U", Int32(1) /* MSG_OOB */), ("34", Int32(0))] {
                let sent = Array(bytes.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
                #expect(sent == bytes.utf8.count)
            }
            usleep(10_000)
            // The read stops at the mark ("12"); the next must not park
            // (nothing more will come to wake it) and gets "34".
            let first = try conn.read(upTo: 64, timeout: .seconds(5))
            let second = first.count < 4 ? try conn.read(upTo: 64, timeout: .seconds(5)) : []
            let flagged = conn.descriptor.alwaysReadFirst.load(ordering: .relaxed)
            return (first, second, flagged)
        }
        #expect(first + second == Array("1234".utf8))
        #expect(flagged)
    }

    /// Two green threads reading one stream at once (outside the one-reader
    /// contract): the drained hint is switched off for good and every byte
    /// still arrives.
    @Test func concurrentReadersTurnTheHintOff() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (total, flagged) = try rt.run { () throws -> (Int, Bool) in
            let (listener, client) = try loopbackPair()
            defer { client.close(); listener.close() }
            let conn = try listener.accept(timeout: .seconds(5))
            defer { conn.close() }
            let readers = (0..<2).map { _ in go { () throws -> Int in
                var got = 0
                while true {
                    let b = try conn.read(upTo: 7, timeout: .seconds(10))
                    if b.isEmpty { return got }
                    got += b.count
                }
            } }
            for _ in 0..<50 {
                try client.write([UInt8](repeating: 1, count: 20))
                usleep(200)
            }
            try client.shutdown(.write)
            let total = try readers.reduce(0) { $0 + (try $1.join()) }
            let flagged = conn.descriptor.alwaysReadFirst.load(ordering: .relaxed)
            return (total, flagged)
        }
        #expect(total == 1000)
        #expect(flagged)
    }
}
}
