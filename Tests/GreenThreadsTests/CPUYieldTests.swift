import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// A worker out of work gives its CPU away before it polls (CPUYield.swift):
/// only while sockets are watched, only when the runtime has a worker for
/// every CPU, and at most once per `cpuYieldNanos`.
@Suite("CPUYield")
struct CPUYieldTests {
    private struct PingPong {
        var yields = 0
        var wrongEchoes = 0
        /// From before the runtime existed to after its sockets closed:
        /// every yield falls inside.
        var span: Int64 = 0
        /// What the runtime's topology said, and the CPUs it saw.
        var coversEveryCPU = false
        var cpus = 0
    }

    /// Two green threads ping-pong 5,000 bytes over loopback TCP on one
    /// worker. Each write readies the peer at once, so the worker never
    /// sleeps: every time both are parked it polls and finds the other ready.
    private func pingPong() throws -> PingPong {
        var result = PingPong()
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
        result.wrongEchoes = try rt.spawn { () throws -> Int in
            var wrong = 0
            for i in 0..<5_000 {
                let byte = UInt8(truncatingIfNeeded: i)
                try client.write([byte])
                if try client.readExactly(1, timeout: .seconds(10)) != [byte] { wrong += 1 }
            }
            try client.shutdown(.write)
            return wrong
        }.join()
        try server.join()
        result.span = gt_now_ns() - before
        result.yields = rt.core.workers.reduce(0) { $0 + $1.counters.cpuYields.load(ordering: .relaxed) }
        result.coversEveryCPU = rt.core.topology.workersCoverEveryCPU
        result.cpus = Topology.availableCPUs().count
        return result
    }

    /// Confined to one CPU, a one-worker runtime covers every CPU it may
    /// use: its worker gives the CPU away now and then, no more often than
    /// the interval allows.
    @Test func aWorkerPerCPUYieldsAtMostOncePerInterval() throws {
        guard let cpu = Topology.availableCPUs().first else {
            Issue.record("no CPU in this thread's affinity mask")
            return
        }
        let outcome = Mutex<Result<PingPong, any Error>?>(nil)
        // A thread of our own: the pin is inherited by the worker it starts
        // and must not stay on a thread the test library reuses.
        let thread = startThread {
            let rc = gt_thread_pin(Int32(cpu))
            let r: Result<PingPong, any Error> = rc == 0
                ? Result { try pingPong() }
                : .failure(NetError(.other, errno: -rc, operation: "pin"))
            outcome.withLock { $0 = r }
        }
        joinThread(thread)
        let p = try #require(try outcome.withLock { $0 }?.get())
        #expect(p.cpus == 1 && p.coversEveryCPU)
        #expect(p.wrongEchoes == 0)
        #expect(p.yields > 0, "a worker serving sockets for \(p.span / 1000) µs never gave its CPU away")
        // Each yield comes a whole interval after the previous one ended.
        #expect(Int64(p.yields) <= p.span / Worker.cpuYieldNanos + 1, "\(p.yields) yields in \(p.span / 1000) µs")
    }

    /// With a CPU to spare the kernel has room for the threads a worker
    /// wakes, so the same serving worker never yields.
    @Test func aRuntimeWithACPUToSpareNeverYields() throws {
        let p = try pingPong()
        #expect(p.wrongEchoes == 0)
        // On a one-CPU machine there is none to spare: one worker covers it.
        #expect(p.coversEveryCPU == (p.cpus <= 1))
        if p.cpus >= 2 { #expect(p.yields == 0) }
    }

    /// Without sockets a runtime never yields its CPUs, however often its
    /// workers run out of work.
    @Test func aComputeOnlyRuntimeNeverYields() throws {
        let rt = Runtime(workers: max(1, Topology.availableCPUs().count))
        defer { rt.shutdown() }
        #expect(rt.core.topology.workersCoverEveryCPU)
        for _ in 0..<200 {
            let hs = (0..<8).map { _ in rt.spawn { GreenThread.yield() } }
            for h in hs { try h.join() }
            usleep(200)
        }
        #expect(rt.core.workers.reduce(0) { $0 + $1.counters.cpuYields.load(ordering: .relaxed) } == 0)
    }
}
}
