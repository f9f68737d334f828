import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// Green threads queued on a worker that is off its CPU (here: stuck in a
/// raw blocking call; on shared cores: descheduled by the kernel) are taken
/// by a worker that stays busy serving sockets (Scheduler/Monitor/StalledPeers.swift).
/// Were that worker to poll for new readiness only when its deque ran dry,
/// the queued threads would wait for the stuck worker to come back.
@Suite("StalledPeer")
struct StalledPeerTests {
    @Test(arguments: [1, 2, 3])
    func queuedThreadsLeaveAStuckWorkerWhileTheOtherServesSockets(round: Int) throws {
        try expectTimely { () throws -> [TimingBound] in
            // No sysmon: it would hand the stuck worker's queue off on its own.
            let rt = Runtime(configuration: .init(workers: 2, preemptionThreshold: nil, handoffThreshold: nil))
            defer { rt.shutdown() }
            let stop = Atomic<Bool>(false)
            let latest = try rt.run { () throws -> Int64 in
                // Eight ping-pong pairs over loopback: whichever worker is free
                // keeps finding ready sockets each time it polls.
                let listener = try TCPListener(host: "127.0.0.1", port: 0)
                defer { listener.close() }
                var pairs: [JoinHandle<Void>] = []
                for _ in 0..<8 {
                    let client = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
                    let server = try listener.accept(timeout: .seconds(5))
                    for (conn, first) in [(client, true), (server, false)] {
                        pairs.append(go {
                            defer { conn.close() }
                            var byte: [UInt8] = [1]
                            if first { try conn.write(byte) }
                            while !stop.load(ordering: .relaxed) {
                                byte = try conn.readExactly(1, timeout: .seconds(10))
                                try conn.write(byte)
                            }
                        })
                    }
                }
                try GreenThread.sleep(for: .milliseconds(20))
                // Queue 16 threads here, then block this worker for 300 ms in a
                // call the runtime does not know about.
                let queuedAt = gt_now_ns()
                let started = (0..<16).map { _ in go { gt_now_ns() - queuedAt } }
                usleep(300_000)
                var latest: Int64 = 0
                for s in started { latest = max(latest, try s.join()) }
                stop.store(true, ordering: .relaxed)
                for p in pairs { _ = try? p.join() }
                return latest
            }
            // Rescued within a few ms of the 1 ms stall threshold; stranded,
            // they would start only after the 300 ms call.
            return [.below("the last queued thread's wait", latest, 150_000_000, loaded: 250_000_000)]
        }
    }
}
}
