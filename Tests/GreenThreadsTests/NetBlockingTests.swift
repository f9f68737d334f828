import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// GreenThread.blocking, and how parked I/O meets deadlock detection, the
/// virtual clock and shutdown.
extension NetSuites {
@Suite("NetBlocking")
struct NetBlockingTests {
    struct Boom: Error, Equatable {}

    final class Counters: @unchecked Sendable {
        let running = Atomic<Int>(0)
        let peak = Atomic<Int>(0)
        let finished = Atomic<Bool>(false)
    }

    @Test func blockingDoesNotDelayATickerOnTheSameWorker() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try expectTimely { () throws -> [TimingBound] in
            let (ticks, maxGap, value) = try rt.run { () throws -> (Int, Int64, Int) in
                let done = Channel<Int>(capacity: 1)
                let ticker = go { () -> (Int, Int64) in
                    var last = gt_now_ns()
                    var maxGap: Int64 = 0
                    var ticks = 0
                    while done.tryReceive() == nil {
                        try GreenThread.sleep(for: .milliseconds(1))
                        let now = gt_now_ns()
                        maxGap = max(maxGap, now - last)
                        last = now
                        ticks += 1
                    }
                    return (ticks, maxGap)
                }
                try GreenThread.sleep(for: .milliseconds(5))
                let v = GreenThread.blocking { () -> Int in
                    usleep(600_000)  // blocks this pool thread, not the worker
                    return 42
                }
                try done.send(1)
                let (ticks, gap) = try ticker.join()
                return (ticks, gap, v)
            }
            #expect(value == 42)
            // Had the body blocked the worker, one gap would be >= 600 ms
            // and there would be a handful of ticks. Ticks are ~1.1 ms apart
            // on an idle machine (the largest gap a few ms); a busy machine
            // deschedules a worker thread for tens, now and then 150, ms.
            return [
                .below("the ticker's longest gap", maxGap, 300_000_000, loaded: 500_000_000),
                .atLeast("ticks in 600 ms", ticks, 50),
            ]
        }
    }

    @Test func blockingRethrowsAndRunsInlineOnOSThreads() throws {
        #expect(throws: Boom.self) { try GreenThread.blocking { throw Boom() } }
        #expect(GreenThread.blocking { 7 } == 7)  // no runtime: inline
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            #expect(throws: Boom.self) { try GreenThread.blocking { throw Boom() } }
            // Non-escaping body: it may use the caller's stack.
            var local = [1, 2, 3]
            GreenThread.blocking { local.append(4) }
            #expect(local == [1, 2, 3, 4])
        }
    }

    @Test func blockingPoolIsBoundedAndEveryCallCompletes() throws {
        let rt = Runtime(configuration: .init(workers: 2, blockingThreads: 4))
        defer { rt.shutdown() }
        let c = Counters()
        let sum = try rt.run { () throws -> Int in
            let hs = (0..<32).map { i in go { () -> Int in
                GreenThread.blocking {
                    let now = c.running.add(1, ordering: .relaxed).newValue
                    var p = c.peak.load(ordering: .relaxed)
                    while now > p, !c.peak.compareExchange(expected: p, desired: now, ordering: .relaxed).exchanged {
                        p = c.peak.load(ordering: .relaxed)
                    }
                    usleep(2_000)
                    c.running.subtract(1, ordering: .relaxed)
                    return i
                }
            } }
            return try joinAll(hs).reduce(0, +)
        }
        #expect(sum == (0..<32).reduce(0, +))
        let peak = c.peak.load(ordering: .relaxed)
        #expect(peak <= 4)
        #expect(peak >= 2)
    }

    @Test func cancellationWaitsForTheBlockingBody() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let c = Counters()
        try rt.run {
            let h = go { () -> Bool in
                GreenThread.blocking {
                    usleep(50_000)
                    c.finished.store(true, ordering: .relaxed)
                }
                return GreenThread.isCancelled
            }
            try GreenThread.sleep(for: .milliseconds(10))
            h.cancel()
            let sawCancel = try h.join()
            #expect(sawCancel)  // returned only after the body
            let finished = c.finished.load(ordering: .relaxed)
            #expect(finished)
        }
    }

    @Test func threadsParkedOnIOAreNotADeadlock() throws {
        // Every green thread parked, nothing queued, no timer: but one waits
        // on a socket, which the outside world can wake.
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let port = listener.port
        let server = rt.spawn { () throws -> [UInt8] in
            let c = try listener.accept()
            return try c.readExactly(2)
        }
        // The client comes from another runtime 300 ms later, well past the
        // 100 ms deadlock confirmation, while this OS thread is in `join`.
        let other = Runtime(workers: 1)
        defer { other.shutdown() }
        let client = other.spawn {
            try GreenThread.sleep(for: .milliseconds(300))
            let s = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            try s.write([4, 2])
            return s
        }
        #expect(try server.join() == [4, 2])
        try client.join().close()
    }

    @Test func virtualClockKeepsWorkingWithIO() throws {
        let rt = Runtime(configuration: .init(workers: 1, clock: .virtual))
        defer { rt.shutdown() }
        let (reply, elapsed) = try rt.run { () throws -> ([UInt8], Duration) in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go {
                let c = try listener.accept()
                try GreenThread.sleep(for: .seconds(3600))  // virtual: instant
                try c.write(try c.readExactly(3))
            }
            let t0 = rt.now
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            try s.write([1, 2, 3])
            let r = try s.readExactly(3)
            try server.join()
            return (r, rt.now - t0)
        }
        #expect(reply == [1, 2, 3])
        #expect(elapsed >= .seconds(3600))
    }

    @Test func shutdownCancelsParkedIO() throws {
        let rt = Runtime(workers: 2)
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let outcome = TestLog<String>()
        let h = rt.spawn {
            do { _ = try listener.accept() } catch is CancellationError { outcome.append("cancelled") } catch { outcome.append("\(error)") }
        }
        usleep(20_000)
        rt.shutdown()
        #expect(h.isFinished)
        #expect(outcome.values == ["cancelled"])
        // The listener outlives the runtime: usable from this OS thread.
        let c = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
        _ = try listener.accept(timeout: .seconds(5))
        c.close()
    }

    @Test func readerAndWriterShareAStream() throws {
        // One green thread reads while another writes the same stream, with
        // more data than the socket buffers hold (both directions park).
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let total = 4 << 20
        let received = try rt.run { () throws -> Int in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let echo = go {
                let c = try listener.accept()
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = try c.read(into: &buf)
                    if n == 0 { break }
                    try buf.withUnsafeBytes { try c.write(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                }
                c.close()
            }
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            let writer = go {
                let chunk = [UInt8](repeating: 0xAB, count: 100_000)
                var sent = 0
                while sent < total {
                    let n = min(chunk.count, total - sent)
                    try s.write(Array(chunk[..<n]))
                    sent += n
                }
                try s.shutdown(.write)
            }
            var got = 0
            while true {
                let b = try s.read(upTo: 65536, timeout: .seconds(20))
                if b.isEmpty { break }
                #expect(b.allSatisfy { $0 == 0xAB })
                got += b.count
            }
            try writer.join()
            try echo.join()
            return got
        }
        #expect(received == total)
    }
}
}
