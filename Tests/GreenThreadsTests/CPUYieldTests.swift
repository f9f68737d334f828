import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// A worker out of work gives its CPU away before it polls (CPUYield.swift):
/// only while sockets are watched, and at most once per `cpuYieldNanos`.
@Suite("CPUYield")
struct CPUYieldTests {
    private func yields(_ rt: Runtime) -> Int {
        rt.core.workers.reduce(0) { $0 + $1.cpuYieldCount.load(ordering: .relaxed) }
    }

    /// Two green threads ping-pong over loopback TCP on one worker. Each
    /// write readies the peer at once, so the worker never sleeps: every
    /// time both are parked it polls and finds the other ready. It gives its
    /// CPU away now and then, no more often than the interval allows.
    @Test func aServingWorkerYieldsAtMostOncePerInterval() throws {
        // Every yield falls between these two stamps: none before sockets.
        let before = gt_now_ns()
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let (listener, client) = try loopbackPair()
        defer { client.close(); listener.close() }
        let server = rt.spawn { () throws in
            let conn = try listener.accept(timeout: .seconds(5))
            defer { conn.close() }
            while true {
                let bytes = try conn.read(upTo: 64)
                if bytes.isEmpty { return }
                try conn.write(bytes)
            }
        }
        let roundTrips = 5_000
        let (elapsed, wrongEchoes) = try rt.spawn { () throws -> (Int64, Int) in
            let start = gt_now_ns()
            var wrong = 0
            for i in 0..<roundTrips {
                let byte = UInt8(truncatingIfNeeded: i)
                try client.write([byte])
                if try client.readExactly(1, timeout: .seconds(10)) != [byte] { wrong += 1 }
            }
            let elapsed = gt_now_ns() - start
            try client.shutdown(.write)
            return (elapsed, wrong)
        }.join()
        #expect(wrongEchoes == 0)
        try server.join()
        let span = gt_now_ns() - before
        let n = yields(rt)
        #expect(n > 0, "a worker serving sockets for \(elapsed / 1000) µs never gave its CPU away")
        // Each yield comes a whole interval after the previous one ended.
        #expect(Int64(n) <= span / Worker.cpuYieldNanos + 1, "\(n) yields in \(span / 1000) µs")
    }

    /// Without sockets a runtime never yields its CPUs, however often its
    /// workers run out of work.
    @Test func aComputeOnlyRuntimeNeverYields() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        for _ in 0..<200 {
            let hs = (0..<8).map { _ in rt.spawn { GreenThread.yield() } }
            for h in hs { try h.join() }
            usleep(200)
        }
        #expect(yields(rt) == 0)
    }
}
}
