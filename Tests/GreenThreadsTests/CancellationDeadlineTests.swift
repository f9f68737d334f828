import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Shared state handed between the test's green threads.
private final class Box<Value>: @unchecked Sendable {
    private let lock = SpinLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// How a test ends a parked wait.
enum Interruption: String, CaseIterable, CustomStringConvertible, Sendable {
    case cancel         // JoinHandle.cancel on the waiting green thread
    case deadline       // a withDeadline scope around the wait
    case cancelScope    // CancelScope.cancel from another green thread

    var description: String { rawValue }
}

/// One blocking call under test: `wait` blocks until interrupted,
/// `registrations` counts what it left queued (0 once it gave up).
private struct Blocker: Sendable {
    let wait: @Sendable () throws -> Void
    let registrations: @Sendable () -> Int
    /// Called after the wait gave up: its object still works.
    var afterwards: @Sendable () throws -> Void = {}
}

/// Which blocking call, by name (the test's argument).
enum WaitKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case send, receive, select, join, sleep, mutex, condition, semaphore, waitGroup, socketRead
    var description: String { rawValue }
}

private func ns(_ d: Duration) -> Int64 {
    d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
}

/// Builds the blocker for `kind`; call it on a green thread.
private func makeBlocker(_ kind: WaitKind) throws -> Blocker {
    switch kind {
    case .send:
        let ch = Channel<Int>()
        return Blocker(wait: { try ch.send(1) }, registrations: { ch.waiterCount },
                       afterwards: { #expect(ch.tryReceive() == nil) })  // nothing was sent
    case .receive:
        let ch = Channel<Int>()
        return Blocker(wait: { _ = try ch.receive() }, registrations: { ch.waiterCount },
                       afterwards: {
                           let r = go { try ch.receive() }
                           try ch.send(7)
                           #expect(try r.join() == 7)
                       })
    case .select:
        let a = Channel<Int>(), b = Channel<String>(capacity: 1)
        try b.send("full")
        return Blocker(wait: {
            _ = try select {
                Case.receive(a) { _ in 0 }
                Case.send(b, "more") { 1 }
            }
        }, registrations: { a.waiterCount + b.waiterCount })
    case .join:
        let gate = Channel<Int>()
        let h = go { try gate.receive() }
        return Blocker(wait: { _ = try h.join() }, registrations: { h.fiber.joinerCount },
                       afterwards: {
                           try gate.send(3)
                           #expect(try h.join() == 3)
                       })
    case .sleep:
        return Blocker(wait: { try GreenThread.sleep(for: .seconds(3600)) }, registrations: { 0 })
    case .mutex:
        let m = GreenMutex()
        try m.lock()
        return Blocker(wait: { try m.lock() }, registrations: { m.waiterCount },
                       afterwards: {
                           m.unlock()  // not handed to the waiter that left
                           #expect(m.tryLock())
                           m.unlock()
                       })
    case .condition:
        let m = GreenMutex(), c = GreenCondition()
        return Blocker(wait: {
            try m.lock()
            defer { m.unlock() }
            try c.wait(m)
        }, registrations: { c.waiterCount }, afterwards: {
            #expect(m.tryLock())  // held again when the wait threw, then released
            m.unlock()
        })
    case .semaphore:
        let s = GreenSemaphore(value: 0)
        return Blocker(wait: { try s.acquire() }, registrations: { s.waiterCount },
                       afterwards: {
                           s.release()  // banked, not handed to the waiter that left
                           #expect(s.count == 1)
                       })
    case .waitGroup:
        let wg = WaitGroup()
        wg.add(1)
        return Blocker(wait: { try wg.wait() }, registrations: { wg.waiterCount })
    case .socketRead:
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let client = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
        let server = try listener.accept(timeout: .seconds(5))
        listener.close()
        return Blocker(wait: { _ = try server.read(upTo: 16) }, registrations: { 0 }, afterwards: {
            try client.write([1, 2, 3])
            #expect(try server.readExactly(3) == [1, 2, 3])  // a socket still reads
            client.close()
            server.close()
        })
    }
}

@Suite("Cancellation and deadlines", .serialized)
struct CancellationDeadlineTests {
    // MARK: Every wait, every interruption

    /// Parks in `kind`'s wait, interrupts it `how`, and checks the error,
    /// that it came in time, and that nothing stayed registered.
    @Test(arguments: WaitKind.allCases, Interruption.allCases)
    func everyWaitThrowsTheRightErrorInTimeAndLeavesNothingBehind(kind: WaitKind, how: Interruption) throws {
        try expectTimely { () throws -> [TimingBound] in
            try onRuntime { () throws -> [TimingBound] in
                let blocker = try makeBlocker(kind)
                let scope = Box<CancelScope?>(nil)
                let delay: Duration = .milliseconds(20)
                let start = gt_now_ns()
                let h = go { () throws in
                    switch how {
                    case .cancel:
                        try blocker.wait()
                    case .deadline:
                        try withDeadline(after: delay) { try blocker.wait() }
                    case .cancelScope:
                        try withCancelScope { s in
                            scope.value = s
                            try blocker.wait()
                        }
                    }
                }
                var interruptedAt = start + ns(delay)
                if how != .deadline {
                    try GreenThread.sleep(for: delay)  // parked by now, most likely; caught either way
                    interruptedAt = gt_now_ns()
                    if how == .cancel {
                        h.cancel()
                    } else {
                        while scope.value == nil { GreenThread.yield() }
                        scope.value?.cancel()
                    }
                }
                var thrown: (any Error)?
                do { try h.join() } catch { thrown = error }
                let ended = gt_now_ns()
                switch how {
                case .cancel, .cancelScope:
                    #expect(thrown is CancellationError, "\(kind) threw \(String(describing: thrown))")
                case .deadline:
                    #expect(thrown is DeadlineExceeded, "\(kind) threw \(String(describing: thrown))")
                    #expect(ended - start >= ns(delay), "a deadline never passes early")
                }
                #expect(blocker.registrations() == 0, "\(kind) left a registration behind")
                try blocker.afterwards()
                return [.below("\(kind) interrupted by \(how)", ended - interruptedAt, 200_000_000)]
            }
        }
    }

    /// `blocking` waits for its body whatever happens meanwhile (the body
    /// may use the caller's stack), returns its result, and the
    /// interruption is there to see afterwards.
    @Test(arguments: Interruption.allCases)
    func blockingFinishesItsBodyAndTheInterruptionShowsAfterwards(how: Interruption) throws {
        try onRuntime { () throws in
            let scope = Box<CancelScope?>(nil)
            let started = Channel<Int>(capacity: 1)
            let h = go { () throws -> (Int, Bool) in
                let body = { () throws -> (Int, Bool) in
                    let v = GreenThread.blocking { () -> Int in
                        _ = started.trySend(1)
                        usleep(50_000)
                        return 42
                    }
                    var interrupted = false
                    do { try GreenThread.checkCancellation() } catch { interrupted = true }
                    return (v, interrupted)
                }
                switch how {
                case .cancel: return try body()
                case .deadline: return try withDeadline(after: .milliseconds(10), body)
                case .cancelScope:
                    return try withCancelScope { s in
                        scope.value = s
                        return try body()
                    }
                }
            }
            _ = try started.receive()
            if how == .cancel { h.cancel() }
            if how == .cancelScope { scope.value?.cancel() }
            let (v, interrupted) = try h.join()
            #expect(v == 42)
            #expect(interrupted)
        }
    }

    // MARK: Scopes

    @Test func nestedDeadlinesKeepTheEarliest() throws {
        #expect(gt_current_scopes() == nil, "no scope leaks into the test's own thread")
        try onRuntime { () throws in
            let ch = Channel<Int>()
            // An inner scope cannot extend an outer one.
            let start = gt_now_ns()
            // do/catch, not #expect(throws:): around these nested scope
            // closures the macro form made the debug build run this closure
            // again in place of the next scope's body.
            var part1: (any Error)?
            do {
                try withDeadline(after: .milliseconds(20)) {
                    try withDeadline(after: .seconds(3600)) { _ = try ch.receive() }
                }
            } catch { part1 = error }
            #expect(part1 is DeadlineExceeded)
            #expect(gt_now_ns() - start < 2_000_000_000)
            // An inner earlier one fires first; once it ended, the outer scope
            // is not expired: its waits work.
            try withDeadline(after: .seconds(3600)) {
                do {
                    try withDeadline(after: .milliseconds(5)) { _ = try ch.receive() }
                    Issue.record("the inner deadline did not fire")
                } catch is DeadlineExceeded {}
                try GreenThread.sleep(for: .milliseconds(1))
                let r = go { try ch.receive() }
                try ch.send(5)
                #expect(try r.join() == 5)
            }
            #expect(ch.waiterCount == 0)
            #expect(GreenThread.currentFiber?.scopes == nil)
        }
    }

    /// Inner scopes that expire (or not) inside an outer one, round after
    /// round: the outer scope's waits keep working, and every scope leaves
    /// the thread's trip count as it found it.
    @Test func expiredInnerScopesLeaveTheOuterOneWorking() throws {
        let failures = try onRuntime { () throws -> [String] in
            let ch = Channel<Int>()
            var failures: [String] = []
            for round in 0..<300 {
                do {
                    try withDeadline(after: .seconds(3600)) {
                        do {
                            try withDeadline(after: .microseconds(round % 50)) { _ = try ch.receive() }
                        } catch is DeadlineExceeded {}
                        try GreenThread.sleep(for: .microseconds(round % 7))
                        let r = go { try ch.receive() }
                        try ch.send(round)
                        if try r.join() != round { failures.append("round \(round): wrong value") }
                    }
                } catch {
                    failures.append("round \(round): \(error)")
                }
                if let s = GreenThread.currentFiber?.spareScopes, s.trips.load(ordering: .relaxed) != 0 {
                    failures.append("round \(round): trips left behind")
                }
            }
            return failures
        }
        #expect(failures == [])
    }

    /// Level-triggered, as Trio's: inside an expired scope every wait throws
    /// at once, so a catch that waits again cannot hang; the error belongs to
    /// the scope that expired and propagates through the inner ones.
    @Test func anExpiredScopeStaysExpiredAndItsErrorPropagates() throws {
        try onRuntime { () throws in
            let ch = Channel<Int>()
            var caughtInside = 0
            #expect(throws: DeadlineExceeded.self) {
                try withDeadline(after: .milliseconds(5)) {
                    do { _ = try ch.receive() } catch is DeadlineExceeded { caughtInside += 1 }
                    do { try GreenThread.sleep(for: .seconds(1)) } catch is DeadlineExceeded { caughtInside += 1 }
                    try withDeadline(after: .seconds(3600)) {
                        try withCancelScope { _ in _ = try ch.receive() }
                    }
                }
            }
            #expect(caughtInside == 2)
        }
    }

    @Test(arguments: [Duration.zero, .seconds(-5), .nanoseconds(-1)])
    func aZeroOrNegativeDurationThrowsAtTheFirstWait(duration: Duration) throws {
        try onRuntime { () throws in
            let ch = Channel<Int>(capacity: 1)
            try withDeadline(after: duration) {
                try ch.send(1)  // needs no wait: completes
                #expect(try ch.receive() == 1)  // a value already there: returned
                let start = gt_now_ns()
                #expect(throws: DeadlineExceeded.self) { _ = try ch.receive() }
                #expect(throws: DeadlineExceeded.self) { try GreenThread.sleep(for: .seconds(1)) }
                #expect(gt_now_ns() - start < 1_000_000_000)
            }
            #expect(throws: DeadlineExceeded.self) {
                try withDeadline(at: .now - .seconds(1)) { _ = try ch.receive() }
            }
            #expect(ch.waiterCount == 0)
        }
    }

    @Test func aSelectTimeoutKeepsItsMeaningAndTheScopeDeadlineItsOwn() throws {
        try onRuntime { () throws in
            let ch = Channel<Int>()
            let picked = try withDeadline(after: .seconds(3600)) {
                try select {
                    Case.receive(ch) { _ in "value" }
                    Case.timeout(.milliseconds(5)) { "timeout" }
                }
            }
            #expect(picked == "timeout")
            #expect(throws: DeadlineExceeded.self) {
                try withDeadline(after: .milliseconds(5)) {
                    _ = try select {
                        Case.receive(ch) { _ in "value" }
                        Case.timeout(.seconds(3600)) { "timeout" }
                    }
                }
            }
            #expect(ch.waiterCount == 0)
        }
    }

    @Test func aCancelAfterTheScopeEndedReachesNothing() throws {
        try onRuntime { () throws in
            let kept = Box<CancelScope?>(nil)
            try withCancelScope { s in kept.value = s }
            kept.value?.cancel()
            #expect(kept.value?.isCancelled == true)
            try GreenThread.sleep(for: .milliseconds(1))  // not interrupted
            #expect(!GreenThread.isCancelled)
            #expect(GreenThread.currentFiber?.scopes == nil)
        }
    }

    @Test func aCancelledReceiveIsNotAClosedChannel() throws {
        try onRuntime { () throws in
            let open = Channel<Int>(), closed = Channel<Int>()
            closed.close()
            #expect(try closed.receive() == nil)
            let h = go { () throws -> Int? in try open.receive() }
            try GreenThread.sleep(for: .milliseconds(5))
            h.cancel()
            #expect(throws: CancellationError.self) { _ = try h.join() }
            // forEach says why a loop ended; plain iteration ends silently.
            let loop = go { () throws -> Int in
                var n = 0
                try open.forEach { _ in n += 1 }
                return n
            }
            try open.send(1)
            loop.cancel()
            #expect(throws: CancellationError.self) { _ = try loop.join() }
            let silent = go { () -> Int in
                var n = 0
                for _ in open { n += 1 }
                return n
            }
            try open.send(1)
            silent.cancel()
            #expect(try silent.join() == 1)
            let drained = Channel<Int>(capacity: 2)
            try drained.send(1)
            try drained.send(2)
            drained.close()
            var seen: [Int] = []
            try drained.forEach { seen.append($0) }
            #expect(seen == [1, 2])
        }
    }

    // MARK: Plain OS threads

    @Test func deadlinesAndCancelScopesWorkOnAPlainOSThread() throws {
        let results = Box<[String]>([])
        let scope = Box<CancelScope?>(nil)
        let ch = Channel<Int>()
        onAnotherThread {
            var r: [String] = []
            do {
                try withDeadline(after: .milliseconds(20)) { _ = try ch.receive() }
                r.append("received")
            } catch { r.append("\(type(of: error))") }
            do {
                try withDeadline(after: .milliseconds(20)) { try GreenThread.sleep(for: .seconds(3600)) }
                r.append("slept")
            } catch { r.append("\(type(of: error))") }
            do {
                try withDeadline(after: .zero) { _ = try ch.receive() }
            } catch { r.append("\(type(of: error))") }
            // A wait's own, earlier timeout keeps its meaning.
            let s = GreenSemaphore(value: 0)
            let got = (try? withDeadline(after: .seconds(3600)) { try s.acquire(timeout: .milliseconds(5)) }) ?? true
            r.append(got ? "acquired" : "timeout")
            results.value = r
        }
        #expect(results.value == ["DeadlineExceeded", "DeadlineExceeded", "DeadlineExceeded", "timeout"])
        #expect(ch.waiterCount == 0)
        #expect(gt_current_scopes() == nil)

        // A cancel scope on an OS thread, cancelled from a green thread.
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let canceller = rt.spawn { () throws in
            while scope.value == nil { try GreenThread.sleep(for: .milliseconds(1)) }
            try GreenThread.sleep(for: .milliseconds(10))
            scope.value?.cancel()
        }
        onAnotherThread {
            do {
                try withCancelScope { s in
                    scope.value = s
                    _ = try ch.receive()
                }
                results.value = ["received"]
            } catch { results.value = ["\(type(of: error))"] }
        }
        try canceller.join()
        #expect(results.value == ["CancellationError"])
        #expect(ch.waiterCount == 0)
    }

    // MARK: Races

    /// A value and an interruption arriving together: no value is lost or
    /// duplicated, and every waiter wakes exactly once (with a value or an
    /// error, never both, never neither).
    @Test(arguments: [1, 2])
    func interruptionsRacingWakeUpsLoseNoValue(workers: Int) throws {
        let rounds = 3_000
        let (sent, received, sendsThrew, receivesThrew) = try onRuntime(workers: workers) { () throws -> (Int, Int, Int, Int) in
            let ch = Channel<Int>()
            var rng = FastRandom(seed: 0x5eed)
            var sent = 0, received = 0, sendsThrew = 0, receivesThrew = 0
            for round in 0..<rounds {
                let receiveLimit = Int64(rng.next() % 60)
                let sendLimit = Int64(rng.next() % 60)
                let cancelReceiver = rng.next() % 2 == 0
                let receiver = go { () throws -> Int? in
                    if cancelReceiver { return try ch.receive() }
                    return try withDeadline(after: .microseconds(receiveLimit)) { try ch.receive() }
                }
                let sender = go { () throws in
                    try withDeadline(after: .microseconds(sendLimit)) { try ch.send(round) }
                }
                if cancelReceiver {
                    for _ in 0..<(rng.next() % 4) { GreenThread.yield() }
                    receiver.cancel()
                }
                var got: Int?
                do { got = try receiver.join() } catch {
                    #expect(error is CancellationError || error is DeadlineExceeded)
                    receivesThrew += 1
                }
                var delivered = true
                do { try sender.join() } catch {
                    #expect(error is DeadlineExceeded)
                    delivered = false
                    sendsThrew += 1
                }
                if let got {
                    #expect(got == round)
                    received += 1
                }
                #expect((got != nil) == delivered, "round \(round): value lost or invented")
                sent += 1
            }
            #expect(ch.waiterCount == 0)
            return (sent, received, sendsThrew, receivesThrew)
        }
        #expect(sent == rounds)
        #expect(sent == received + sendsThrew)
        #expect(received + receivesThrew == rounds)
    }
}
