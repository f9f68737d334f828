import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// Runs `body` on a new plain OS thread (no runtime) and returns its result.
private func onPlainThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
    let slot = ResultSlot<T>()
    onAnotherThread { slot.result = Result { try body() } }  // joined: the write is visible
    return try slot.result!.get()
}

/// One thread's result, read after joining that thread.
private final class ResultSlot<T: Sendable>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// Entries in every heap of `rt`, stale ones included.
private func heapEntries(_ rt: Runtime) -> Int {
    rt.core.workers.reduce(0) { $0 + $1.timers.count }
}

private let ms: Int64 = 1_000_000

/// GreenTimer, Ticker and after(_:): Go's timers as channels, with Go
/// 1.23's rule that nothing stale arrives after a stop or a reset.
/// Timing checks are "never early" (a correctness property) and generous
/// upper bounds only.
@Suite("GreenTimer", .serialized)
struct GreenTimerTests {
    // MARK: GreenTimer

    @Test func stopBeforeFiringReturnsTrueAndNothingArrives() throws {
        let (first, second, late) = try onRuntime { () throws -> (Bool, Bool, ContinuousClock.Instant?) in
            let t = GreenTimer(after: .milliseconds(30))
            let first = t.stop()
            let second = t.stop()
            try GreenThread.sleep(for: .milliseconds(100))
            return (first, second, t.channel.tryReceive())
        }
        #expect(first)
        #expect(!second, "a second stop stops nothing")
        #expect(late == nil)
    }

    @Test func stopAfterTheValueWasReceivedReturnsFalse() throws {
        let (got, stopped) = try onRuntime { () throws -> (Bool, Bool) in
            let t = GreenTimer(after: .milliseconds(1))
            let v = try t.channel.receive()
            return (v != nil, t.stop())
        }
        #expect(got)
        #expect(!stopped)
    }

    @Test func firesNoEarlierThanItsDuration() throws {
        let (elapsed, v) = try onRuntime { () throws -> (Int64, ContinuousClock.Instant?) in
            let start = gt_now_ns()
            let t = GreenTimer(after: .milliseconds(20))
            let v = try t.channel.receive()
            return (gt_now_ns() - start, v)
        }
        #expect(v != nil)
        #expect(elapsed >= 20 * ms)
        #expect(elapsed < 10_000 * ms)
    }

    /// Go 1.23: the channel looks unbuffered to whoever stops the timer, so
    /// a value fired into the buffer but not received counts as not fired.
    @Test func stopDiscardsAFiredValueNobodyReceived() throws {
        let (stopped, late) = try onRuntime { () throws -> (Bool, ContinuousClock.Instant?) in
            let t = GreenTimer(after: .milliseconds(1))
            // Same heap, later deadline: the timer has fired when this wakes.
            try GreenThread.sleep(for: .milliseconds(30))
            return (t.stop(), t.channel.tryReceive())
        }
        #expect(stopped)
        #expect(late == nil)
    }

    @Test func resetRearmsAndFiresOnceAtTheNewTime() throws {
        let (wasPending, elapsed, got, again) = try onRuntime { () throws -> (Bool, Int64, Bool, Bool) in
            let t = GreenTimer(after: .seconds(3600))
            let start = gt_now_ns()
            let wasPending = t.reset(after: .milliseconds(30))
            let v = try t.channel.receive()
            let elapsed = gt_now_ns() - start
            try GreenThread.sleep(for: .milliseconds(60))
            return (wasPending, elapsed, v != nil, t.channel.tryReceive() != nil)
        }
        #expect(wasPending)
        #expect(got)
        #expect(elapsed >= 30 * ms, "fired \(elapsed / ms) ms after a 30 ms reset")
        #expect(elapsed < 10_000 * ms)
        #expect(!again, "a reset timer fires once")
    }

    @Test func resetAfterStopArmsAgain() throws {
        let (stopped, wasPending, got) = try onRuntime { () throws -> (Bool, Bool, Bool) in
            let t = GreenTimer(after: .seconds(3600))
            let stopped = t.stop()
            let wasPending = t.reset(after: .milliseconds(5))
            return (stopped, wasPending, try t.channel.receive() != nil)
        }
        #expect(stopped)
        #expect(!wasPending)
        #expect(got)
    }

    @Test func resetDiscardsAStaleValue() throws {
        let (wasPending, stale, stopped) = try onRuntime { () throws -> (Bool, Bool, Bool) in
            let t = GreenTimer(after: .milliseconds(1))
            try GreenThread.sleep(for: .milliseconds(30))
            let wasPending = t.reset(after: .seconds(3600))
            return (wasPending, t.channel.tryReceive() != nil, t.stop())
        }
        #expect(wasPending)
        #expect(!stale, "a value from before the reset arrived")
        #expect(stopped)
    }

    @Test func zeroAndNegativeDurationsFireAtOnce() throws {
        let check = { @Sendable () -> [Bool] in
            let zero = GreenTimer(after: .zero)
            let negative = GreenTimer(after: .seconds(-5))
            let reset = GreenTimer(after: .seconds(3600))
            reset.reset(after: .milliseconds(-1))
            return [zero.channel.tryReceive() != nil, negative.channel.tryReceive() != nil,
                    after(.zero).tryReceive() != nil, after(.nanoseconds(-1)).tryReceive() != nil,
                    reset.channel.tryReceive() != nil, !reset.stop()]
        }
        #expect(try onRuntime(check).allSatisfy { $0 })
        #expect(try onPlainThread(check).allSatisfy { $0 })
    }

    /// Stops and resets racing fires (the timers fall due on the other
    /// worker too): whatever the interleaving, a timer nobody received
    /// from is always pending to `stop`/`reset`, and nothing from before
    /// the call arrives after it.
    @Test func stopAndResetRacingFiresLeaveNothingStale() throws {
        let rounds = 20_000
        let (stopFalse, resetFalse, stale) = try onRuntime { () throws -> (Int, Int, Int) in
            var stopFalse = 0, resetFalse = 0, stale = 0
            var spin: UInt64 = 1
            for i in 0..<rounds {
                let t = GreenTimer(after: .nanoseconds(i % 50_000))
                for _ in 0..<(i % 97) { spin = spin &* 6364136223846793005 &+ 1 }
                if i % 2 == 0 {
                    if !t.stop() { stopFalse += 1 }
                } else {
                    if !t.reset(after: .seconds(3600)) { resetFalse += 1 }
                    t.stop()
                }
                if t.channel.tryReceive() != nil { stale += 1 }
                if i % 1_000 == 0 { GreenThread.yield() }
            }
            return (stopFalse, resetFalse, spin == 0 ? -1 : stale)
        }
        #expect(stopFalse == 0)
        #expect(resetFalse == 0)
        #expect(stale == 0)
    }

    // MARK: Ticker

    @Test func tickerDeliversTicksInOrder() throws {
        let ticks = try onRuntime { () throws -> [ContinuousClock.Instant] in
            let ticker = Ticker(every: .milliseconds(5))
            defer { ticker.stop() }
            var ticks: [ContinuousClock.Instant] = []
            for _ in 0..<5 { if let t = try ticker.channel.receive() { ticks.append(t) } }
            return ticks
        }
        #expect(ticks.count == 5)
        #expect(zip(ticks, ticks.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test func tickerDropsTicksASlowReaderMissed() throws {
        let (buffered, next) = try onRuntime { () throws -> (Int, Bool) in
            let ticker = Ticker(every: .milliseconds(20))
            defer { ticker.stop() }
            // Five periods and more: five ticks fell due.
            try GreenThread.sleep(for: .milliseconds(110))
            let drainStart = ContinuousClock.now
            var buffered = 0
            while let t = ticker.channel.tryReceive() {
                if t <= drainStart { buffered += 1 }  // not one that came during the drain
            }
            // Still ticking, and after now.
            let next = try ticker.channel.receive()
            return (buffered, next.map { $0 > drainStart } ?? false)
        }
        #expect(buffered == 1, "\(buffered) ticks buffered")
        #expect(next)
    }

    @Test func tickerStopEndsTicks() throws {
        let (before, after) = try onRuntime { () throws -> (Int, Int) in
            let ticker = Ticker(every: .milliseconds(5))
            var before = 0
            for _ in 0..<2 { if try ticker.channel.receive() != nil { before += 1 } }
            ticker.stop()
            try GreenThread.sleep(for: .milliseconds(50))
            var after = 0
            while ticker.channel.tryReceive() != nil { after += 1 }
            return (before, after)
        }
        #expect(before == 2)
        // Go 1.23's rule, stricter than "at most one buffered tick".
        #expect(after == 0)
    }

    @Test func tickerResetChangesThePeriod() throws {
        let got = try onRuntime { () throws -> Int in
            let ticker = Ticker(every: .seconds(3600))
            defer { ticker.stop() }
            ticker.reset(every: .milliseconds(5))
            var got = 0
            for _ in 0..<3 { if try ticker.channel.receive() != nil { got += 1 } }
            return got
        }
        #expect(got == 3)
    }

    /// On a virtual clock the grid is exact: a tick is due at start + k·1 s
    /// however late the reader is, and the ticks it missed are gone.
    @Test func tickerKeepsItsGridInVirtualTime() throws {
        let rt = Runtime(configuration: .init(workers: 1, clock: .virtual))
        defer { rt.shutdown() }
        let (first, buffered, next, timerAt) = try rt.run { () throws -> (Duration, Int, Duration, Duration) in
            let start = rt.now
            let ticker = Ticker(every: .seconds(1))
            defer { ticker.stop() }
            _ = try ticker.channel.receive()
            let first = rt.now - start
            // Ticks due at 2, 3 and 4 s: one is kept.
            try GreenThread.sleep(for: .milliseconds(3_500))
            var buffered = 0
            while ticker.channel.tryReceive() != nil { buffered += 1 }
            _ = try ticker.channel.receive()
            let next = rt.now - start
            let timerStart = rt.now
            _ = try GreenTimer(after: .seconds(3600)).channel.receive()
            return (first, buffered, next, rt.now - timerStart)
        }
        #expect(first == .seconds(1))
        #expect(buffered == 1)
        #expect(next == .seconds(5))
        #expect(timerAt == .seconds(3600))
    }

    @Test func nonPositiveTickerPeriodIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            _ = Ticker(every: .zero)
        }
        await #expect(processExitsWith: .failure) {
            Ticker(every: .seconds(1)).reset(every: .milliseconds(-1))
        }
    }

    // MARK: select, plain OS threads

    @Test func afterInASelectBesideADataChannel() throws {
        let (timedOut, data) = try onRuntime { () throws -> (String, String) in
            let idle = Channel<Int>()
            let timedOut = try select {
                Case.receive(idle) { v in "data \(v ?? -1)" }
                Case.receive(after(.milliseconds(10))) { _ in "timer" }
            }
            let busy = Channel<Int>()
            go { () throws in try busy.send(7) }
            let timer = GreenTimer(after: .seconds(3600))
            defer { timer.stop() }
            let data = try select {
                Case.receive(busy) { v in "data \(v ?? -1)" }
                Case.receive(timer.channel) { _ in "timer" }
            }
            return (timedOut, data)
        }
        #expect(timedOut == "timer")
        #expect(data == "data 7")
    }

    @Test func timersWorkFromAPlainOSThread() throws {
        let (elapsed, stopped, quiet, ticks, afterFired) = try onPlainThread {
            () throws -> (Int64, Bool, Bool, Int, Bool) in
            let start = gt_now_ns()
            let t = GreenTimer(after: .milliseconds(10))
            _ = try t.channel.receive()
            let elapsed = gt_now_ns() - start
            let never = GreenTimer(after: .milliseconds(10))
            let stopped = never.stop()
            let ticker = Ticker(every: .milliseconds(5))
            var ticks = 0
            for _ in 0..<3 { if try ticker.channel.receive() != nil { ticks += 1 } }
            ticker.stop()
            let afterFired = try after(.milliseconds(5)).receive() != nil
            return (elapsed, stopped, never.channel.tryReceive() == nil, ticks, afterFired)
        }
        #expect(elapsed >= 10 * ms)
        #expect(elapsed < 10_000 * ms)
        #expect(stopped)
        #expect(quiet)
        #expect(ticks == 3)
        #expect(afterFired)
    }

    @Test func aTimerMadeOnAGreenThreadWakesAPlainOSThread() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let timer = try rt.run { GreenTimer(after: .milliseconds(10)) }
        let got = try onPlainThread { try timer.channel.receive() != nil }
        #expect(got)
    }

    @Test func aTickerMadeOnAPlainOSThreadWakesAGreenThread() throws {
        let ticker = try onPlainThread { Ticker(every: .milliseconds(5)) }
        defer { ticker.stop() }
        let ticks = try onRuntime { () throws -> Int in
            var ticks = 0
            for _ in 0..<3 { if try ticker.channel.receive() != nil { ticks += 1 } }
            return ticks
        }
        #expect(ticks == 3)
    }

    // MARK: Scale

    #if DEBUG
    static let churn = 100_000
    #else
    static let churn = 1_000_000
    #endif

    @Test func createdAndStoppedTimersDoNotGrowTheHeap() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let n = Self.churn
        let (allStopped, peak) = try rt.run { () throws -> (Bool, Int) in
            var allStopped = true, peak = 0
            for i in 0..<n {
                let t = GreenTimer(after: .seconds(3600))
                allStopped = t.stop() && allStopped
                if i % 1_000 == 0 { peak = max(peak, heapEntries(rt)) }
            }
            return (allStopped, peak)
        }
        #expect(allStopped)
        // A heap purges its dead entries once they are half of it.
        #expect(peak <= 2 * TimerHeap.purgeFloor * rt.core.workers.count, "\(peak) entries")
        #expect(heapEntries(rt) <= 2 * TimerHeap.purgeFloor * rt.core.workers.count)

        // The same off every runtime, on the timer thread's heap.
        let heap = TimerThread.shared.heap
        let threadPeak = try onPlainThread { () -> Int in
            var peak = 0
            for i in 0..<n {
                GreenTimer(after: .seconds(3600)).stop()
                if i % 1_000 == 0 { peak = max(peak, heap.count) }
            }
            return peak
        }
        #expect(threadPeak <= 2 * TimerHeap.purgeFloor, "\(threadPeak) entries")
    }

    @Test func manyPendingTimersStopAndLeaveNothingBehind() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let n = Self.churn / 2
        let (pending, stopped) = try rt.run { () throws -> (Int, Int) in
            let timers = (0..<n).map { i in GreenTimer(after: .seconds(3600 + i % 1_000)) }
            let pending = heapEntries(rt)
            let stopped = timers.filter { $0.stop() }.count
            return (pending, stopped)
        }
        #expect(pending == n)
        #expect(stopped == n)
        #expect(heapEntries(rt) <= 2 * TimerHeap.purgeFloor * rt.core.workers.count)
    }
}
