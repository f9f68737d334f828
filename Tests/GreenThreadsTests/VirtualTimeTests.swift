import CContext
import Testing
@testable import GreenThreads

/// Virtual time and seeded scheduling: SimPy-style simulation, and replay.
@Suite("VirtualTime", .serialized)
struct VirtualTimeTests {
    @Test func tenYearsOfSleepTakeUnderASecond() throws {
        let tenYears = Duration.seconds(10 * 365 * 24 * 3600)
        try expectTimely { () throws -> [TimingBound] in
            let rt = Runtime(configuration: .init(workers: 2, clock: .virtual))
            defer { rt.shutdown() }
            let t0 = gt_now_ns()
            let woke = try rt.run { () throws -> Duration in
                let sleepers = (1...3).map { k in go { () -> Duration in
                    try GreenThread.sleep(for: tenYears * k)
                    return rt.now
                } }
                return try joinAll(sleepers).max()!
            }
            let took = gt_now_ns() - t0
            // Virtual time: exact, whatever the load.
            #expect(woke >= tenYears * 3)
            #expect(woke < tenYears * 3 + .seconds(1))
            return [.below("ten years of virtual sleep, in real time", took, 1_000_000_000)]
        }
    }

    @Test func timeStandsStillWhileThreadsRun() throws {
        let rt = Runtime(configuration: .init(workers: 1, clock: .virtual))
        defer { rt.shutdown() }
        let (before, after) = try rt.run { () -> (Duration, Duration) in
            let before = rt.now
            var x: UInt64 = 1
            for i in 0..<200_000 { x = x &* 6364136223846793005 &+ UInt64(i) }
            return (before, x == 0 ? before : rt.now)
        }
        #expect(before == after)
    }

    @Test func timeoutsUseVirtualTime() throws {
        let rt = Runtime(configuration: .init(workers: 1, clock: .virtual))
        defer { rt.shutdown() }
        let (result, at) = try rt.run { () throws -> (String, Duration) in
            let never = Channel<Int>()
            let r = try select {
                Case.receive(never) { _ in "value" }
                Case.timeout(.seconds(3600)) { "timeout" }
            }
            return (r, rt.now)
        }
        #expect(result == "timeout")
        #expect(at == .seconds(3600))
    }

    @Test func sameSeedReplaysTheSameSimulation() throws {
        let first = try chargingStation(seed: 42)
        #expect(first.count == 18)
        for _ in 0..<2 { #expect(try chargingStation(seed: 42) == first) }
    }

    @Test func otherSeedsGiveOtherInterleavings() throws {
        let base = try chargingStation(seed: 42)
        let others = try [1, 2, 3, 4, 5].map { try chargingStation(seed: UInt64($0)) }
        #expect(others.contains { $0 != base })
    }
}

/// SimPy's electric-car example in miniature: cars arrive every two minutes
/// and take whichever of two chargers is free; when both are free, select
/// picks one at random (so the seed decides).
func chargingStation(seed: UInt64) throws -> [String] {
    let rt = Runtime(configuration: .init(workers: 1, clock: .virtual, seed: seed))
    defer { rt.shutdown() }
    return try rt.run { () throws -> [String] in
        let log = TestLog<String>()
        let fast = Channel<Int>(capacity: 1), slow = Channel<Int>(capacity: 1)
        try fast.send(0)
        try slow.send(1)
        let minutes: @Sendable (Duration) -> Int64 = { $0.components.seconds / 60 }
        let cars = (0..<6).map { car in
            go { () throws in
                try GreenThread.sleep(for: .seconds(120 * car))
                log.append("\(minutes(rt.now)) car \(car) arrives")
                let charger = try select {
                    Case.receive(fast) { $0! }
                    Case.receive(slow) { $0! }
                }
                log.append("\(minutes(rt.now)) car \(car) charges at \(charger == 0 ? "fast" : "slow")")
                try GreenThread.sleep(for: .seconds(charger == 0 ? 180 : 420))
                log.append("\(minutes(rt.now)) car \(car) leaves")
                try (charger == 0 ? fast : slow).send(charger)
            }
        }
        try joinAll(cars)
        return log.values
    }
}
