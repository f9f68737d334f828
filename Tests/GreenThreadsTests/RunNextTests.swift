import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

// The run-next hand-off (Worker.wakeNext): a wake into an empty run-next
// slot notifies no idle worker, so these check that such a thread is never
// stranded behind a waker that keeps running, and that channel hand-offs
// between workers still deliver everything.

/// Burns the CPU until `nanos` have passed: no checkpoint, no switch.
private func busy(nanos: Int64) {
    let end = gt_now_ns() + nanos
    var x: UInt64 = 1
    while gt_now_ns() < end {
        x = spin(x, iterations: 100)
    }
    withExtendedLifetime(x) {}
}

/// How the waker keeps its worker after the wake.
enum WakerHold: String, CaseIterable, Sendable {
    case busyLoop      // computes without a checkpoint
    case blockingCall  // an unannounced blocking syscall (usleep)
}

@Suite("Run-next hand-off", .serialized)
struct RunNextTests {
    /// A receiver woken into the run-next slot of a waker that then holds
    /// its worker for 200 ms runs on the other (idle, asleep) worker long
    /// before that: with sysmon (the quiet hand-off's safety net) and
    /// without it (every wake notifies).
    @Test(arguments: WakerHold.allCases, [true, false])
    func aThreadWokenByAWakerThatKeepsItsWorkerRunsElsewhere(holding: WakerHold, monitored: Bool) throws {
        try expectTimely { () throws -> [TimingBound] in
            let configuration = monitored
                ? Runtime.Configuration(workers: 2)
                : Runtime.Configuration(workers: 2, preemptionThreshold: nil, handoffThreshold: nil)
            let rt = Runtime(configuration: configuration)
            defer { rt.shutdown() }
            let (latency, hold) = try rt.run { [rt] () throws -> (Int64, Int64) in
                let ch = Channel<Int>(), start = Channel<Int>()
                let receiver = go { () -> Int64 in
                    _ = try ch.receive()
                    return gt_now_ns()
                }
                let waker = go { () throws -> (Int64, Int64) in
                    _ = try start.receive()
                    let sent = gt_now_ns()
                    try ch.send(1)  // the receiver: into this worker's run-next slot
                    switch holding {
                    case .busyLoop: busy(nanos: 200_000_000)
                    case .blockingCall: for _ in 0..<20 { usleep(10_000) }
                    }
                    return (sent, gt_now_ns())
                }
                // Both are parked; wait for the other worker to spin out and
                // sleep (no timer pending, so it sleeps until notified). The
                // waker wakes into our run-next slot, and runs here once we park
                // in the join: nothing in between asks the sleeping worker to
                // look for work.
                let idle = rt.core.idle
                while idle.sleeping.load(ordering: .acquiring) == 0 { GreenThread.yield() }
                try start.send(1)
                let (sent, end) = try waker.join()
                let ran = try receiver.join()
                return (ran - sent, end - sent)
            }
            // Busy or not, it must run before the waker lets go of its worker.
            return [.below("the receiver's wait", latency, 100_000_000, loaded: hold)]
        }
    }

    /// One producer, one consumer, on two workers, over channels of every
    /// kind, with and without work on either side: every item arrives, in
    /// order.
    @Test(arguments: [0, 1, 16, 1024])
    func producerAndConsumerOnTwoWorkersDeliverEverything(capacity: Int) throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        for (producerWork, consumerWork) in [(0, 0), (2_000, 0), (0, 2_000), (500, 500)] {
            let items = producerWork + consumerWork == 0 ? 200_000 : 2_000
            let ok = try rt.run { () throws -> Bool in
                let ch = Channel<Int>(capacity: capacity)
                let producer = go { () throws in
                    var x: UInt64 = 1
                    for i in 0..<items {
                        if producerWork > 0 { x = spin(x, iterations: producerWork) }
                        try ch.send(i)
                    }
                    ch.close()
                    withExtendedLifetime(x) {}
                }
                var expected = 0
                var x: UInt64 = 1
                for v in ch {
                    if v != expected { return false }
                    expected += 1
                    if consumerWork > 0 { x = spin(x, iterations: consumerWork) }
                }
                try producer.join()
                withExtendedLifetime(x) {}
                return expected == items
            }
            #expect(ok, "capacity \(capacity), work \(producerWork)/\(consumerWork): items lost or out of order")
        }
    }

    /// Tokens passed around rings of green threads over channels of random
    /// capacity, with random work, yields, sleeps and blocking calls between
    /// hops, on two workers: every token makes every hop, and every thread
    /// finishes. Wakes land in run-next slots of every worker while other
    /// threads compute, block or park.
    @Test func randomizedHandOffsOnTwoWorkersLoseNothing() throws {
        for seed in 1...4 {
            let rt = Runtime(workers: 2)
            let hops = Atomic<Int>(0)
            // Fewer tokens than members: someone is always free to receive,
            // so the ring cannot fill up with blocked senders.
            let ringSize = 2 + seed, tokens = seed, hopsPerToken = 300
            let forwarded = try rt.run { () throws -> Int in
                var rng = FastRandom(seed: UInt64(seed))
                let chans = (0..<ringSize).map { _ in Channel<Int>(capacity: [0, 0, 1, 4][rng.next(below: 4)]) }
                let members = (0..<ringSize).map { i in
                    let inbox = chans[i], outbox = chans[(i + 1) % ringSize]
                    let childSeed = rng.next()
                    return go { () throws -> Int in
                        var r = FastRandom(seed: childSeed)
                        var sent = 0
                        // A token is hops made so far * 1000 + its number.
                        while let token = try inbox.receive() {
                            hops.add(1, ordering: .relaxed)
                            switch r.next(below: 16) {
                            case 0: GreenThread.yield()
                            case 1: try GreenThread.sleep(for: .microseconds(r.next(below: 100)))
                            case 2: _ = spin(UInt64(token), iterations: r.next(below: 20_000))
                            case 3: usleep(useconds_t(r.next(below: 300)))
                            default: break
                            }
                            let made = token / 1000 + 1
                            if made == hopsPerToken { continue }  // its last hop
                            try outbox.send(made * 1000 + token % 1000)
                            sent += 1
                        }
                        return sent
                    }
                }
                for t in 0..<tokens { try chans[t].send(t) }
                while hops.load(ordering: .relaxed) < tokens * hopsPerToken {
                    try GreenThread.sleep(for: .microseconds(200))
                }
                for ch in chans { ch.close() }
                return try joinAll(members).reduce(0, +)
            }
            rt.shutdown()
            #expect(hops.load(ordering: .relaxed) == tokens * hopsPerToken, "seed \(seed)")
            #expect(forwarded == tokens * (hopsPerToken - 1), "seed \(seed)")
            #expect(rt.stats.live == 0, "seed \(seed)")
        }
    }
}
