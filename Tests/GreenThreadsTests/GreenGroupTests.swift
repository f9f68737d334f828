import CContext
import Synchronization
import Testing
@testable import GreenThreads

private struct Failure: Error, Equatable { let code: Int }

/// Yields until `condition` holds or 10 s pass (a loaded machine is slow);
/// whether it held.
/// How joining `handle` ended: "returned", "cancelled", or the error.
private func joinOutcome<T>(_ handle: JoinHandle<T>) -> String {
    do {
        _ = try handle.join()
        return "returned"
    } catch is CancellationError {
        return "cancelled"
    } catch {
        return "\(error)"
    }
}

private func eventually(_ condition: () -> Bool) -> Bool {
    let end = gt_now_ns() + 10_000_000_000
    while !condition() {
        if gt_now_ns() > end { return false }
        GreenThread.yield()
    }
    return true
}

/// The highest number of bodies seen running at once.
private final class Concurrency: Sendable {
    let now = Atomic<Int>(0)
    let peak = Atomic<Int>(0)

    func enter() {
        let n = now.add(1, ordering: .relaxed).newValue
        var p = peak.load(ordering: .relaxed)
        while n > p {
            let (exchanged, seen) = peak.compareExchange(expected: p, desired: n, ordering: .relaxed)
            if exchanged { break }
            p = seen
        }
    }

    func leave() { now.subtract(1, ordering: .relaxed) }
}

@Suite("GreenGroup", .serialized)
struct GreenGroupTests {
    // MARK: Results

    @Test func resultsComeInSpawnOrder() throws {
        let values = try onRuntime { () throws -> [Int] in
            try withGreenGroup { (group: GreenGroup<Int>) in
                for i in 0..<200 {
                    try group.go {
                        // Later spawns often finish first.
                        for _ in 0..<(200 - i) % 7 { GreenThread.yield() }
                        return i * i
                    }
                }
            }
        }
        #expect(values == (0..<200).map { $0 * $0 })
    }

    @Test func anEmptyGroupReturnsNothing() throws {
        let values = try onRuntime { () throws -> [String] in
            try withGreenGroup(limit: 3) { (_: GreenGroup<String>) in }
        }
        #expect(values.isEmpty)
    }

    @Test func nextFollowsCompletionOrderAndTakesValuesOnce() throws {
        let (taken, rest, afterAll) = try onRuntime { () throws -> ([Int], [Int], Int?) in
            let gates = (0..<5).map { _ in Channel<Int>(capacity: 1) }
            var taken: [Int] = []
            var afterAll: Int? = -1
            let rest = try withGreenGroup { (group: GreenGroup<Int>) in
                for i in 0..<5 {
                    try group.go {
                        _ = try gates[i].receive()
                        return i
                    }
                }
                // Each child ends only when its gate opens: the order of the
                // opened gates is the order of completion.
                for i in [3, 0, 4] {
                    try gates[i].send(i)
                    if let v = try group.next() { taken.append(v) }
                }
                for i in [1, 2] { try gates[i].send(i) }
                _ = eventually { group.scope.running == 0 }
                // Both ended, neither taken: the rest of the result.
                afterAll = nil
            }
            return (taken, rest, afterAll)
        }
        #expect(taken == [3, 0, 4])
        #expect(rest == [1, 2], "values taken by next() are not returned again; the rest keep spawn order")
        #expect(afterAll == nil)
    }

    @Test func nextReturnsNilOnceEverythingWasTaken() throws {
        let (seen, rest) = try onRuntime { () throws -> ([Int], [Int]) in
            var seen: [Int] = []
            let rest = try withGreenGroup(limit: 4) { (group: GreenGroup<Int>) in
                for i in 0..<20 { try group.go { i } }
                while let v = try group.next() { seen.append(v) }
                #expect(try group.next() == nil)
            }
            return (seen, rest)
        }
        #expect(seen.sorted() == Array(0..<20))
        #expect(rest.isEmpty)
    }

    // MARK: The limit

    @Test(arguments: [1, 3, 8])
    func theLimitBoundsRunningBodiesAndIsReached(limit: Int) throws {
        let c = Concurrency()
        let values = try onRuntime { () throws -> [Int] in
            try withGreenGroup(limit: limit) { (group: GreenGroup<Int>) in
                for i in 0..<60 {
                    try group.go {
                        c.enter()
                        defer { c.leave() }
                        // Stay until `limit` bodies were seen at once (or a
                        // while has passed): whether the limit is reached
                        // must not depend on how the machine schedules.
                        let end = gt_now_ns() + 200_000_000
                        while c.peak.load(ordering: .relaxed) < limit && gt_now_ns() < end {
                            try GreenThread.sleep(for: .milliseconds(1))
                        }
                        return i
                    }
                }
            }
        }
        #expect(values == Array(0..<60))
        #expect(c.peak.load(ordering: .relaxed) <= limit)
        #expect(c.peak.load(ordering: .relaxed) == limit)
    }

    @Test func tenThousandChildrenWithALimitOfEight() throws {
        let c = Concurrency()
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (sum, liveBefore, liveAfter) = try rt.run { () throws -> (Int, Int, Int) in
            let before = rt.stats.live
            let values = try withGreenGroup(limit: 8) { (group: GreenGroup<Int>) in
                for i in 0..<10_000 {
                    try group.go {
                        c.enter()
                        defer { c.leave() }
                        if i % 3 == 0 { GreenThread.yield() }
                        return i
                    }
                }
            }
            return (values.reduce(0, +), before, rt.stats.live)
        }
        #expect(sum == 10_000 * 9_999 / 2)
        #expect(c.peak.load(ordering: .relaxed) <= 8)
        #expect(liveAfter == liveBefore)
    }

    @Test func aLimitBelowOneIsRefused() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let rt = Runtime(workers: 1)
            _ = try? rt.run { () throws -> [Int] in
                try withGreenGroup(limit: 0) { (_: GreenGroup<Int>) in }
            }
        }
        // An optimized build traps without the message.
        #if DEBUG
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("withGreenGroup(limit: 0)"), "\(stderr)")
        #else
        _ = result
        #endif
    }

    @Test func withGreenGroupOutsideAGreenThreadIsRefused() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = try? withGreenGroup { (_: GreenGroup<Int>) in }
        }
        // An optimized build traps without the message.
        #if DEBUG
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("runtime.withGreenGroup"), "\(stderr)")
        #else
        _ = result
        #endif
    }

    // MARK: Errors

    @Test func theFirstErrorCancelsSiblingsInReceiveAndSleep() throws {
        let ended = Atomic<Int>(0)
        let t0 = gt_now_ns()
        let outcome = try onRuntime { () -> Result<[Int], Failure> in
            let never = Channel<Int>(capacity: 0)
            do {
                let values = try withGreenGroup { (group: GreenGroup<Int>) in
                    for _ in 0..<3 {
                        try group.go {
                            defer { ended.add(1, ordering: .relaxed) }
                            _ = try never.receive()
                            if GreenThread.isCancelled { throw CancellationError() }
                            return 0
                        }
                        try group.go {
                            defer { ended.add(1, ordering: .relaxed) }
                            try GreenThread.sleep(for: .seconds(60))
                            if GreenThread.isCancelled { throw CancellationError() }
                            return 0
                        }
                    }
                    try group.go {
                        try GreenThread.sleep(for: .milliseconds(5))
                        throw Failure(code: 7)
                    }
                }
                return .success(values)
            } catch let f as Failure {
                return .failure(f)
            }
        }
        #expect(outcome == .failure(Failure(code: 7)), "the first error, not the cancellations it caused")
        #expect(ended.load(ordering: .relaxed) == 6, "every sibling ended before the group returned")
        #expect(gt_now_ns() - t0 < 30_000_000_000, "the sleepers were cut short")
    }

    @Test func theBodyThrowingCancelsTheChildren() throws {
        let ended = Atomic<Int>(0)
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (outcome, liveBefore, liveAfter) = try rt.run { () -> (Result<[Int], Failure>, Int, Int) in
            let before = rt.stats.live
            let never = Channel<Int>(capacity: 0)
            let started = Atomic<Int>(0)
            let outcome: Result<[Int], Failure>
            do {
                outcome = .success(try withGreenGroup { (group: GreenGroup<Int>) in
                    for _ in 0..<4 {
                        try group.go {
                            defer { ended.add(1, ordering: .relaxed) }
                            started.add(1, ordering: .relaxed)
                            _ = try never.receive()
                            return 1
                        }
                    }
                    _ = eventually { started.load(ordering: .relaxed) == 4 }
                    throw Failure(code: 3)
                })
            } catch let f as Failure {
                outcome = .failure(f)
            }
            return (outcome, before, rt.stats.live)
        }
        #expect(outcome == .failure(Failure(code: 3)))
        #expect(ended.load(ordering: .relaxed) == 4)
        #expect(liveAfter == liveBefore, "nothing of the group is live once it threw")
    }

    @Test func goOnAFailedGroupStartsNothing() throws {
        let (startedAfter, thrown) = try onRuntime { () throws -> (Int, Bool) in
            let started = Atomic<Int>(0)
            var goThrewCancellation = false
            do {
                _ = try withGreenGroup { (group: GreenGroup<Int>) in
                    try group.go { throw Failure(code: 1) }
                    _ = eventually { group.scope.cancelled }
                    do {
                        try group.go { started.add(1, ordering: .relaxed); return 0 }
                    } catch is CancellationError {
                        goThrewCancellation = true
                        throw CancellationError()
                    }
                }
            } catch let f as Failure {
                #expect(f == Failure(code: 1), "the child's error, though the body's came later")
            }
            return (started.load(ordering: .relaxed), goThrewCancellation)
        }
        #expect(thrown)
        #expect(startedAfter == 0)
    }

    @Test func nextThrowsTheFirstError() throws {
        let caught = try onRuntime { () throws -> Failure? in
            do {
                _ = try withGreenGroup { (group: GreenGroup<Int>) in
                    try group.go { 1 }
                    try group.go { throw Failure(code: 9) }
                    while try group.next() != nil {}
                }
                return nil
            } catch let f as Failure {
                return f
            }
        }
        #expect(caught == Failure(code: 9))
    }

    // MARK: Cancellation of the parent

    @Test func cancellingTheParentCancelsChildrenWhileItRuns() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let started = Atomic<Int>(0)
        let ended = Atomic<Int>(0)
        let (parentOutcome, liveBefore, liveAfter) = try rt.run { () throws -> (String, Int, Int) in
            let before = rt.stats.live
            let never = Channel<Int>(capacity: 0)
            let parent = go { () throws -> [Int] in
                try withGreenGroup { (group: GreenGroup<Int>) in
                    // A child that only checks the flag, busy.
                    try group.go {
                        defer { ended.add(1, ordering: .relaxed) }
                        started.add(1, ordering: .relaxed)
                        while !GreenThread.isCancelled && !never.isClosed { GreenThread.yield() }
                        if GreenThread.isCancelled { throw CancellationError() }
                        return 0
                    }
                    for _ in 0..<2 {
                        try group.go {
                            defer { ended.add(1, ordering: .relaxed) }
                            started.add(1, ordering: .relaxed)
                            _ = try never.receive()
                            if GreenThread.isCancelled { throw CancellationError() }
                            return 0
                        }
                    }
                    // The parent runs, not waiting: only the cancel itself
                    // can reach the children.
                    let end = gt_now_ns() + 10_000_000_000
                    while ended.load(ordering: .relaxed) < 3 && gt_now_ns() < end { GreenThread.yield() }
                    // Not cancelled: end them, so the test fails instead of hanging.
                    never.close()
                }
            }
            _ = eventually { started.load(ordering: .relaxed) == 3 }
            parent.cancel()
            return (joinOutcome(parent), before, rt.stats.live)
        }
        #expect(parentOutcome == "cancelled")
        #expect(ended.load(ordering: .relaxed) == 3)
        #expect(liveAfter == liveBefore)
    }

    @Test func goWaitingForASlotIsCancellable() throws {
        let outcome = try onRuntime { () throws -> String in
            let never = Channel<Int>(capacity: 0)
            let waiting = Atomic<Bool>(false)
            let parent = go { () throws -> String in
                do {
                    _ = try withGreenGroup(limit: 1) { (group: GreenGroup<Int>) in
                        try group.go {
                            _ = try never.receive()
                            if GreenThread.isCancelled { throw CancellationError() }
                            return 0
                        }
                        waiting.store(true, ordering: .relaxed)
                        try group.go { 1 }  // parks: the one slot is taken
                    }
                    return "returned"
                } catch is CancellationError {
                    return "cancelled"
                }
            }
            _ = eventually { waiting.load(ordering: .relaxed) && parent.fiber.state == .parked }
            parent.cancel()
            return try parent.join()
        }
        #expect(outcome == "cancelled")
    }

    @Test func aCancelledThreadStartsNothingInANewGroup() throws {
        let (outcome, started) = try onRuntime { () throws -> (String, Int) in
            let started = Atomic<Int>(0)
            let go1 = Atomic<Bool>(false)
            let h = go { () throws -> String in
                while !go1.load(ordering: .relaxed) { GreenThread.yield() }
                do {
                    _ = try withGreenGroup { (group: GreenGroup<Int>) in
                        try group.go { started.add(1, ordering: .relaxed); return 1 }
                    }
                    return "returned"
                } catch is CancellationError {
                    return "cancelled"
                }
            }
            h.cancel()
            go1.store(true, ordering: .relaxed)
            return (try h.join(), started.load(ordering: .relaxed))
        }
        #expect(outcome == "cancelled")
        #expect(started == 0)
    }

    @Test func cancellingTheOuterParentReachesGrandchildren() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let started = Atomic<Int>(0)
        let ended = Atomic<Int>(0)
        let (outcome, liveBefore, liveAfter) = try rt.run { () throws -> (String, Int, Int) in
            let before = rt.stats.live
            let never = Channel<Int>(capacity: 0)
            let parent = go { () throws -> [[Int]] in
                try withGreenGroup { (outer: GreenGroup<[Int]>) in
                    for _ in 0..<2 {
                        try outer.go {
                            try withGreenGroup { (inner: GreenGroup<Int>) in
                                for _ in 0..<3 {
                                    try inner.go {
                                        defer { ended.add(1, ordering: .relaxed) }
                                        started.add(1, ordering: .relaxed)
                                        _ = try never.receive()
                                        if GreenThread.isCancelled { throw CancellationError() }
                                        return 0
                                    }
                                }
                            }
                        }
                    }
                }
            }
            _ = eventually { started.load(ordering: .relaxed) == 6 }
            parent.cancel()
            // Not cancelled: end them, so the test fails instead of hanging.
            if !eventually({ ended.load(ordering: .relaxed) == 6 }) { never.close() }
            return (joinOutcome(parent), before, rt.stats.live)
        }
        #expect(outcome == "cancelled")
        #expect(ended.load(ordering: .relaxed) == 6)
        #expect(liveAfter == liveBefore)
    }

    @Test func cancelsRacingTheOpeningOfGroupsAreNeverMissed() throws {
        // The cancel lands anywhere: before the group opens, while children
        // are being started, while the body runs or waits. The children
        // only end when cancelled, so a missed cancel would leave the
        // parent stuck in its group (caught here by the deadline, which
        // then closes the channel to let the test end and fail).
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (stuck, wrongOutcomes, liveBefore, liveAfter) = try rt.run { () throws -> (Int, Int, Int, Int) in
            let before = rt.stats.live
            var stuck = 0, wrong = 0
            var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
            for round in 0..<300 {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let delay = Int(seed >> 58)  // 0..<64 yields
                let never = Channel<Int>(capacity: 0)
                let parent = go { () throws -> [Int] in
                    try withGreenGroup(limit: round % 2 == 0 ? 2 : .max) { (group: GreenGroup<Int>) in
                        for _ in 0..<4 {
                            try group.go {
                                _ = try never.receive()
                                if GreenThread.isCancelled { throw CancellationError() }
                                return 0
                            }
                        }
                        if round % 3 == 0 { _ = try group.next() }
                    }
                }
                for _ in 0..<delay { GreenThread.yield() }
                parent.cancel()
                if !eventually({ parent.isFinished }) {
                    stuck += 1
                    never.close()
                }
                do {
                    _ = try parent.join()
                    wrong += 1
                } catch is CancellationError {
                } catch {
                    wrong += 1
                }
            }
            _ = eventually { rt.stats.live == before }
            return (stuck, wrong, before, rt.stats.live)
        }
        #expect(stuck == 0)
        #expect(wrongOutcomes == 0)
        #expect(liveAfter == liveBefore)
    }

    // MARK: Nesting, children that spawn, plain threads

    @Test func nestedGroupsReturnTheirResults() throws {
        let values = try onRuntime { () throws -> [[Int]] in
            try withGreenGroup(limit: 2) { (outer: GreenGroup<[Int]>) in
                for i in 0..<4 {
                    try outer.go {
                        try withGreenGroup(limit: 3) { (inner: GreenGroup<Int>) in
                            for j in 0..<5 { try inner.go { i * 10 + j } }
                        }
                    }
                }
            }
        }
        #expect(values == (0..<4).map { i in (0..<5).map { i * 10 + $0 } })
    }

    @Test func childrenMayStartSiblings() throws {
        let values = try onRuntime { () throws -> [Int] in
            try withGreenGroup { (group: GreenGroup<Int>) in
                try group.go {
                    for i in 1...3 { try group.go { i } }
                    return 0
                }
            }
        }
        #expect(values == [0, 1, 2, 3])
    }

    @Test func aPlainOSThreadRunsAGroupOnARuntime() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let values = try rt.withGreenGroup(limit: 2) { (group: GreenGroup<Int>) in
            for i in 0..<50 {
                try group.go {
                    try GreenThread.sleep(for: .microseconds(100))
                    return i
                }
            }
        }
        #expect(values == Array(0..<50))
        #expect(rt.stats.live == 0)
        #expect(throws: Failure(code: 5)) {
            _ = try rt.withGreenGroup { (group: GreenGroup<Int>) in
                try group.go { throw Failure(code: 5) }
                try group.go {
                    try GreenThread.sleep(for: .seconds(60))
                    return 1
                }
            }
        }
        #expect(rt.stats.live == 0)
    }
}

/// Groups inside deadline and cancel scopes: the scope reaches the
/// children, whether the owner is parked in the group or busy in its body.
@Suite("GreenGroup in scopes")
struct GreenGroupScopeTests {
    @Test("a deadline around a group ends its blocked children and the group throws DeadlineExceeded")
    func deadlineAroundGroup() throws {
        let rt = Runtime(configuration: .init(workers: 2))
        defer { rt.shutdown() }
        let live = rt.stats.live
        let errors = try rt.run { () throws -> [String] in
            let gate = Channel<Int>(capacity: 0)
            let seen = Channel<String>(capacity: 8)
            let start = ContinuousClock.now
            do {
                _ = try withDeadline(after: .milliseconds(50)) {
                    try withGreenGroup(limit: 4) { (group: GreenGroup<Int>) in
                        for i in 0..<4 {
                            try group.go {
                                do {
                                    if i % 2 == 0 { try GreenThread.sleep(for: .seconds(30)) } else { _ = try gate.receive() }
                                } catch {
                                    _ = seen.trySend("\(type(of: error))")
                                    throw error
                                }
                                return i
                            }
                        }
                    }
                }
                Issue.record("the group returned past its deadline")
            } catch is DeadlineExceeded {
                #expect(ContinuousClock.now - start < .seconds(10))
            }
            seen.close()
            return Array(seen)
        }
        #expect(errors.count == 4)
        #expect(errors.allSatisfy { $0 == "DeadlineExceeded" || $0 == "CancellationError" }, "\(errors)")
        #expect(rt.stats.live == live)
    }

    @Test("a child inherits the deadline while the owner is busy in its body")
    func childInheritsDeadline() throws {
        let rt = Runtime(configuration: .init(workers: 2))
        defer { rt.shutdown() }
        let outcome = try rt.run { () throws -> (String, Duration) in
            let start = ContinuousClock.now
            let ended = Channel<(String, ContinuousClock.Instant)>(capacity: 1)
            do {
                _ = try withDeadline(after: .milliseconds(30)) {
                    try withGreenGroup { (group: GreenGroup<Int>) in
                        try group.go {
                            do {
                                try GreenThread.sleep(for: .seconds(30))
                            } catch {
                                _ = ended.trySend(("\(type(of: error))", ContinuousClock.now))
                                throw error
                            }
                            return 0
                        }
                        // Busy, never waiting, until the child has ended.
                        while ended.count == 0, ContinuousClock.now - start < .seconds(20) {}
                    }
                }
            } catch is DeadlineExceeded {}
            let (what, when) = try #require(try ended.receive())
            return (what, when - start)
        }
        #expect(outcome.0 == "DeadlineExceeded")
        #expect(outcome.1 < .seconds(10))
    }

    @Test("cancelling a scope around a group cancels its children")
    func cancelScopeAroundGroup() throws {
        let rt = Runtime(configuration: .init(workers: 2))
        defer { rt.shutdown() }
        let live = rt.stats.live
        let thrown = try rt.run { () throws -> String in
            let never = Channel<Int>(capacity: 0)
            do {
                _ = try withCancelScope { scope in
                    try withGreenGroup { (group: GreenGroup<Int>) in
                        for _ in 0..<3 { try group.go { try never.receive() ?? 0 } }
                        go { try? GreenThread.sleep(for: .milliseconds(20)); scope.cancel() }
                    }
                }
                return "returned"
            } catch {
                return "\(type(of: error))"
            }
        }
        #expect(thrown == "CancellationError")
        #expect(rt.stats.live == live)
    }
}
