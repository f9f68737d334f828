import GreenThreads
import GreenThreadsMetrics
import InMemoryLogging
import Logging
import MetricsTestKit
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Publishes until the runtime's figures are the same before and after the
/// update, so what was published is exactly `rt.stats` (workers going to
/// sleep can move `parks` while the update reads it). Returns those stats.
private func settledUpdate(_ metrics: RuntimeMetrics, _ rt: Runtime) throws -> RuntimeStats {
    for _ in 0..<500 {
        let before = rt.stats
        metrics.update()
        if rt.stats == before { return before }
        usleep(2_000)
    }
    Issue.record("the runtime's figures never held still: \(rt.stats)")
    throw CancellationError()
}

/// Waits up to 10 s (a loaded 2-core machine) for `condition`.
private func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<5_000 {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}

@Suite("RuntimeMetrics", .serialized)
struct RuntimeMetricsTests {
    @Test func gaugesAndCountersMatchTheRuntimesStats() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let metrics = RuntimeMetrics(runtime: rt, factory: factory)
        let sum = try rt.run { () throws -> Int in
            let parts = (0..<100).map { i in go { () -> Int in GreenThread.yield(); return i } }
            return try joinAll(parts).reduce(0, +)
        }
        #expect(sum == 4_950)
        let s = try settledUpdate(metrics, rt)
        #expect(s.spawned >= 101)
        #expect(try factory.expectCounter("greenthreads_spawned_total").totalValue == Int64(s.spawned))
        #expect(try factory.expectCounter("greenthreads_completed_total").totalValue == Int64(s.completed))
        #expect(try factory.expectCounter("greenthreads_parks_total").totalValue == Int64(s.parks))
        #expect(try factory.expectCounter("greenthreads_switches_total").totalValue == Int64(s.switches))
        #expect(try factory.expectCounter("greenthreads_steals_total", [("kind", "local")]).totalValue == Int64(s.localSteals))
        #expect(try factory.expectCounter("greenthreads_steals_total", [("kind", "remote")]).totalValue == Int64(s.remoteSteals))
        #expect(try factory.expectCounter("greenthreads_handoffs_total").totalValue == Int64(s.handoffs))
        #expect(try factory.expectGauge("greenthreads_live_threads").lastValue == Double(s.live))
        #expect(try factory.expectGauge("greenthreads_workers").lastValue == 2)
        #expect(try factory.expectGauge("greenthreads_stacks_mapped").lastValue == Double(s.stacksMapped))
        #expect(s.stacksMapped > 0)
        #expect(try factory.expectGauge("greenthreads_stack_bytes").lastValue
            == Double(s.stacksMapped * rt.configuration.stackSize))
    }

    @Test func countersGrowByTheDifferenceBetweenUpdates() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let metrics = RuntimeMetrics(runtime: rt, factory: factory)
        _ = try rt.run { try joinAll((0..<10).map { _ in go {} }) }
        let first = try settledUpdate(metrics, rt)
        _ = try rt.run { try joinAll((0..<25).map { _ in go {} }) }
        let second = try settledUpdate(metrics, rt)
        let spawned = try factory.expectCounter("greenthreads_spawned_total")
        // Two runs of 1 + n spawns each: the increments are the growth,
        // not the running totals, and they add up to the runtime's count.
        #expect(spawned.values.first == Int64(first.spawned))
        #expect(spawned.values.last == Int64(second.spawned - first.spawned))
        #expect(second.spawned - first.spawned == 26)
        #expect(spawned.totalValue == Int64(second.spawned))
        // Nothing ran since: another update adds nothing.
        let count = spawned.values.count
        metrics.update()
        #expect(spawned.values.count == count)
    }

    @Test func liveGaugeCountsParkedGreenThreads() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let metrics = RuntimeMetrics(runtime: rt, factory: factory)
        let live = try rt.run { () throws -> Double? in
            let gate = Channel<Int>(capacity: 0)
            let waiters = (0..<10).map { _ in go { _ = try gate.receive() } }
            // Published from a green thread: update is safe anywhere.
            let seen = eventually { metrics.update(); return rt.stats.live >= 11 }
            #expect(seen)
            let live = try factory.expectGauge("greenthreads_live_threads").lastValue
            gate.close()
            try joinAll(waiters)
            return live
        }
        #expect(try #require(live) >= 11)
    }

    @Test func prefixAndDimensionsNameEveryMetric() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let metrics = RuntimeMetrics(runtime: rt, prefix: "io", dimensions: [("runtime", "io")], factory: factory)
        try rt.run {}
        metrics.update()
        #expect(try factory.expectGauge("io_workers", [("runtime", "io")]).lastValue == 1)
        #expect(try factory.expectCounter("io_spawned_total", [("runtime", "io")]).totalValue >= 1)
        #expect(try factory.expectCounter("io_steals_total", [("runtime", "io"), ("kind", "local")]).totalValue == 0)
        #expect(factory.counters(label: "greenthreads_spawned_total").isEmpty)
    }

    @Test func timerPublishesUntilStopped() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let metrics = RuntimeMetrics(runtime: rt, factory: factory)
        metrics.start(interval: .milliseconds(5))
        let workers = try factory.expectGauge("greenthreads_workers")
        #expect(eventually { workers.values.count >= 3 })
        metrics.stop()
        usleep(50_000)  // an update already running when stop was called
        let count = workers.values.count
        usleep(100_000)
        #expect(workers.values.count == count)
        // Started again, it publishes again.
        metrics.start(interval: .milliseconds(5))
        #expect(eventually { workers.values.count > count })
        metrics.stop()
    }

    @Test func handoffIsCountedAndLogged() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let factory = TestMetrics()
        let log = InMemoryLogHandler()
        let metrics = RuntimeMetrics(runtime: rt, factory: factory, logger: Logger(label: "test") { _ in log })
        metrics.update()
        #expect(log.entries.isEmpty)
        try rt.run {
            let ticker = go {
                for _ in 0..<50 { try GreenThread.sleep(for: .milliseconds(1)) }
            }
            // An unannounced blocking call holds the only worker while the
            // ticker waits: sysmon hands its work to a replacement.
            let blocker = go { for _ in 0..<20 { usleep(10_000) } }
            try blocker.join()
            try ticker.join()
        }
        #expect(rt.stats.handoffs >= 1)
        metrics.update()
        #expect(try factory.expectCounter("greenthreads_handoffs_total").totalValue == Int64(rt.stats.handoffs))
        let warnings = log.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.message.description.contains("replacement worker") == true)
        #expect(warnings.first?.metadata["handoffs"] == "\(rt.stats.handoffs)")
        // No new hand-off, no new line.
        metrics.update()
        #expect(log.entries.count == warnings.count)
    }
}

private struct Boom: Error, CustomStringConvertible {
    var description: String { "boom" }
}

@Suite("UnhandledErrorLog")
struct UnhandledErrorLogTests {
    @Test func unjoinedFailureIsLoggedAsAnError() throws {
        let log = InMemoryLogHandler()
        let logger = Logger(label: "test") { _ in log }
        let rt = Runtime(configuration: .init(workers: 1, unhandledErrorHandler: UnhandledErrorLog.handler(logger: logger)))
        defer { rt.shutdown() }
        // The handle is dropped when the main green thread returns, before
        // the thread fails: nobody can join it any more.
        let id = try rt.run { () -> GreenThread.ID in
            go {
                try GreenThread.sleep(for: .milliseconds(1))
                throw Boom()
            }.id
        }
        #expect(eventually { !log.entries.isEmpty })
        let entry = try #require(log.entries.first)
        #expect(entry.level == .error)
        #expect(entry.message.description.contains("failed and was never joined"))
        #expect(entry.error is Boom)
        #expect(entry.metadata["error"] == "boom")
        #expect(entry.metadata["green_thread"] == "\(id.rawValue)")
    }

    @Test func levelIsTheCallersChoice() throws {
        let log = InMemoryLogHandler()
        var logger = Logger(label: "test") { _ in log }
        logger.logLevel = .trace
        let rt = Runtime(configuration: .init(
            workers: 1, unhandledErrorHandler: UnhandledErrorLog.handler(logger: logger, level: .notice)))
        defer { rt.shutdown() }
        try rt.run { _ = go { throw Boom() } }
        #expect(eventually { !log.entries.isEmpty })
        #expect(log.entries.map(\.level) == [.notice])
    }
}
