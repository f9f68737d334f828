import CContext
import Synchronization
import Testing
@testable import GreenThreads

private struct Oops: Error, Equatable { let code: Int }

private final class Store { var items: [Int] = []; var reads = 0 }

/// Yields while holding a (dynamically checked) inout access open.
private func fill(_ items: inout [Int], _ yield: Generator<Int>.Yield) throws {
    for i in 0..<100 {
        items.append(i)
        try yield(items.count)  // the access to `items` stays open here
    }
}

/// Stacks owned by started, unfinished coroutines and greenlets, process-wide.
/// Every suite below runs serialized (the trait is inherited), so no other
/// coroutine test moves it while one is looking.
private var stacksInUse: Int { CoroutineStackPool.shared.inUse.load(ordering: .relaxed) }

@Suite("Coroutines", .serialized)
struct CoroutineTests {}

// MARK: - Coroutine: Python's generator protocol

extension CoroutineTests {
    @Suite struct CoroutineProtocolTests {
        /// The API.md example, step by step.
        func runningTotal() -> Coroutine<Int, String, Int> {
            Coroutine<Int, String, Int> { yield in
                var total = 0
                while true {
                    let n = try yield("ok \(total)")
                    if n == 0 { return total }
                    total += n
                }
            }
        }

        @Test func contractExampleWalksEveryLiveState() throws {
            let co = runningTotal()
            #expect(co.state == .created)
            #expect(try co.start() == .yielded("ok 0"))
            #expect(co.state == .suspended)
            #expect(try co.send(5) == .yielded("ok 5"))
            #expect(try co.send(7) == .yielded("ok 12"))
            #expect(try co.send(0) == .returned(12))
            #expect(co.state == .closed)
        }

        @Test func sendBeforeStartIsAnErrorAndChangesNothing() throws {
            let co = runningTotal()
            #expect(throws: CoroutineError.notStarted) { try co.send(1) }
            #expect(co.state == .created)
            #expect(try co.start() == .yielded("ok 0"))
        }

        @Test func startTwiceIsAnError() throws {
            let co = runningTotal()
            try co.start()
            #expect(throws: CoroutineError.alreadyStarted) { try co.start() }
            #expect(co.state == .suspended)
        }

        @Test func startAndSendAfterReturnAreErrors() throws {
            let co = runningTotal()
            try co.start()
            #expect(try co.send(0) == .returned(0))
            #expect(throws: CoroutineError.closed) { try co.send(1) }
            #expect(throws: CoroutineError.closed) { try co.start() }
            #expect(co.state == .closed)
        }

        @Test func bodyThatReturnsAtOnce() throws {
            let co = Coroutine<Int, Int, String> { _ in "done" }
            #expect(try co.start() == .returned("done"))
            #expect(co.state == .closed)
        }

        @Test func closeOnCreatedNeverRunsTheBody() throws {
            var ran = false
            let co = Coroutine<Int, Int, Void> { yield in
                ran = true
                try yield(1)
            }
            try co.close()
            #expect(co.state == .closed)
            #expect(!ran)
            try co.close()  // closed: a no-op
            #expect(throws: CoroutineError.closed) { try co.start() }
            #expect(!ran)
        }

        @Test func closeOnSuspendedUnwindsTheBody() throws {
            var log: [String] = []
            let co = Coroutine<Int, Int, Void> { yield in
                defer { log.append("defer") }
                do {
                    try yield(1)
                    log.append("not reached")
                } catch is CoroutineExit {
                    log.append("exit")
                    throw CoroutineExit()
                }
            }
            try co.start()
            let before = stacksInUse
            try co.close()
            #expect(co.state == .closed)
            #expect(log == ["exit", "defer"])
            #expect(stacksInUse == before - 1)
            try co.close()  // closed: a no-op
            #expect(log == ["exit", "defer"])
            #expect(throws: CoroutineError.closed) { try co.send(1) }
        }

        @Test func closeAfterReturnIsANoOp() throws {
            let co = runningTotal()
            try co.start()
            _ = try co.send(0)
            try co.close()
            #expect(co.state == .closed)
        }

        @Test func yieldingAfterCloseIsAnError() throws {
            var deferRan = false
            let co = Coroutine<Int, Int, Void> { yield in
                defer { deferRan = true }
                do { try yield(1) } catch {}  // swallows CoroutineExit
                try yield(2)                  // refused: throws instead of suspending
            }
            try co.start()
            #expect(throws: CoroutineError.yieldAfterClose) { try co.close() }
            #expect(co.state == .closed)
            #expect(deferRan)
        }

        @Test func yieldAfterCloseIsReportedEvenIfTheBodyThenReturns() throws {
            let co = Coroutine<Int, Int, Void> { yield in
                do { try yield(1) } catch {}
                do { try yield(2) } catch {}
            }
            try co.start()
            #expect(throws: CoroutineError.yieldAfterClose) { try co.close() }
            #expect(co.state == .closed)
        }

        @Test func closeRethrowsAnotherErrorRaisedWhileUnwinding() throws {
            let co = Coroutine<Int, Int, Void> { yield in
                do { try yield(1) } catch is CoroutineExit { throw Oops(code: 9) }
            }
            try co.start()
            #expect(throws: Oops(code: 9)) { try co.close() }
            #expect(co.state == .closed)
        }

        @Test func closeThatTheBodyAnswersByReturningIsClean() throws {
            let co = Coroutine<Int, Int, Int> { yield in
                do { try yield(1) } catch is CoroutineExit { return 5 }
                return 0
            }
            try co.start()
            try co.close()
            #expect(co.state == .closed)
        }

        @Test func throwIntoCreatedClosesAndRethrows() throws {
            var ran = false
            let co = Coroutine<Int, Int, Void> { yield in
                ran = true
                try yield(1)
            }
            #expect(throws: Oops(code: 1)) { try co.throw(Oops(code: 1)) }
            #expect(co.state == .closed)
            #expect(!ran)
            #expect(throws: CoroutineError.closed) { try co.start() }
        }

        @Test func throwThatTheBodyCatchesYieldsAgain() throws {
            let co = Coroutine<Int, String, Void> { yield in
                while true {
                    do { try yield("waiting") } catch let e as Oops { try yield("caught \(e.code)") }
                }
            }
            try co.start()
            #expect(try co.throw(Oops(code: 3)) == .yielded("caught 3"))
            #expect(co.state == .suspended)
            #expect(try co.send(0) == .yielded("waiting"))
            try co.close()
        }

        @Test func throwThatTheBodyCatchesAndReturns() throws {
            let co = Coroutine<Int, Int, String> { yield in
                do { try yield(1) } catch let e as Oops { return "ended by \(e.code)" }
                return "normally"
            }
            try co.start()
            #expect(try co.throw(Oops(code: 4)) == .returned("ended by 4"))
            #expect(co.state == .closed)
        }

        @Test func uncaughtThrowPropagatesAndCloses() throws {
            var deferRan = false
            let co = Coroutine<Int, Int, Void> { yield in
                defer { deferRan = true }
                try yield(1)
            }
            try co.start()
            #expect(throws: Oops(code: 5)) { try co.throw(Oops(code: 5)) }
            #expect(co.state == .closed)
            #expect(deferRan)
            #expect(throws: CoroutineError.closed) { try co.send(0) }
            #expect(throws: Oops(code: 6)) { try co.throw(Oops(code: 6)) }  // closed: rethrown
        }

        @Test func errorEscapingTheBodyPropagatesFromSendAndCloses() throws {
            let co = Coroutine<Int, Int, Void> { yield in
                let n = try yield(0)
                throw Oops(code: n)
            }
            try co.start()
            #expect(throws: Oops(code: 8)) { try co.send(8) }
            #expect(co.state == .closed)
            #expect(throws: CoroutineError.closed) { try co.send(1) }
        }

        @Test func errorBeforeTheFirstYieldPropagatesFromStart() throws {
            let co = Coroutine<Int, Int, Void> { _ in throw Oops(code: 2) }
            #expect(throws: Oops(code: 2)) { try co.start() }
            #expect(co.state == .closed)
        }

        @Test func resumingItselfFromItsBodyIsAnError() throws {
            final class Box { var co: Coroutine<Int, Int, Void>? }
            let box = Box()
            var seen: [CoroutineError] = []
            var stateInside: CoroutineState?
            let co = Coroutine<Int, Int, Void> { [unowned box] yield in
                let me = box.co!
                stateInside = me.state
                for attempt in 0..<4 {
                    do {
                        switch attempt {
                        case 0: try me.send(1)
                        case 1: try me.start()
                        case 2: try me.throw(Oops(code: 0))
                        default: try me.close()
                        }
                    } catch let e as CoroutineError {
                        seen.append(e)
                    }
                }
                try yield(1)
            }
            box.co = co
            #expect(try co.start() == .yielded(1))
            #expect(stateInside == .running)
            #expect(seen == [.alreadyRunning, .alreadyRunning, .alreadyRunning, .alreadyRunning])
            try co.close()
        }

        @Test func aYieldHandleUsedOutsideItsBodyIsRefused() throws {
            var escaped: Coroutine<Int, Int, Void>.Yield?
            let co = Coroutine<Int, Int, Void> { yield in
                escaped = yield
                try yield(1)
            }
            try co.start()
            #expect(throws: CoroutineError.yieldOutsideBody) { try escaped!(2) }
            try co.close()
            #expect(throws: CoroutineError.yieldOutsideBody) { try escaped!(3) }
        }

        @Test func anInnerBodyCannotYieldThroughItsParentsHandle() throws {
            var caught: CoroutineError?
            let outer = Coroutine<Int, Int, Void> { outerYield in
                let inner = Coroutine<Int, Int, Void> { _ in
                    do { try outerYield(99) } catch let e as CoroutineError { caught = e }
                }
                try inner.start()
                try outerYield(1)
            }
            #expect(try outer.start() == .yielded(1))
            #expect(caught == .yieldOutsideBody)
            try outer.close()
        }

        @Test func abandoningASuspendedCoroutineUnwindsIt() throws {
            let before = stacksInUse
            var log: [String] = []
            do {
                let co = Coroutine<Int, Int, Void> { yield in
                    defer { log.append("defer") }
                    while true { try yield(0) }
                }
                try co.start()
                #expect(stacksInUse == before + 1)
            }
            #expect(log == ["defer"])
            #expect(stacksInUse == before)
        }
    }
}

// MARK: - yield.from

extension CoroutineTests {
    @Suite struct CoroutineDelegationTests {
        /// Sums what it is sent until 0, yielding its running total; returns it.
        static func adder(_ tag: String) -> Coroutine<Int, String, Int> {
            Coroutine { yield in
                var total = 0
                while true {
                    let n: Int
                    do {
                        n = try yield("\(tag) \(total)")
                    } catch let e as Oops {
                        n = -e.code
                    }
                    if n == 0 { return total }
                    total += n
                }
            }
        }

        @Test func valuesGoThroughBothWaysAndTheReturnValueComesBack() throws {
            let outer = Coroutine<Int, String, [Int]> { yield in
                let a = try yield.from(Self.adder("a"))
                let b = try yield.from(Self.adder("b"))
                try yield("between")
                return [a, b]
            }
            #expect(try outer.start() == .yielded("a 0"))
            #expect(try outer.send(2) == .yielded("a 2"))
            #expect(try outer.send(3) == .yielded("a 5"))
            #expect(try outer.send(0) == .yielded("b 0"))
            #expect(try outer.send(10) == .yielded("b 10"))
            #expect(try outer.send(0) == .yielded("between"))
            #expect(try outer.send(0) == .returned([5, 10]))
        }

        @Test func throwsPassToTheDelegate() throws {
            let outer = Coroutine<Int, String, Int> { yield in
                try yield.from(Self.adder("a"))
            }
            try outer.start()
            _ = try outer.send(10)
            // The delegate catches Oops and subtracts its code.
            #expect(try outer.throw(Oops(code: 4)) == .yielded("a 6"))
            #expect(try outer.send(0) == .returned(6))
        }

        @Test func anUncaughtThrowComesOutOfTheDelegateIntoTheOuterBody() throws {
            struct Other: Error {}
            var innerDefer = false
            let outer = Coroutine<Int, String, String> { yield in
                let inner = Coroutine<Int, String, Int> { yield in
                    defer { innerDefer = true }
                    while true { try yield("inner") }
                }
                do {
                    _ = try yield.from(inner)
                    return "no"
                } catch is Other {
                    return "outer caught it"
                }
            }
            try outer.start()
            #expect(try outer.throw(Other()) == .returned("outer caught it"))
            #expect(innerDefer)
        }

        @Test func closingTheOuterClosesTheDelegateFirst() throws {
            var log: [String] = []
            let outer = Coroutine<Int, Int, Void> { yield in
                defer { log.append("outer") }
                let inner = Coroutine<Int, Int, Void> { yield in
                    defer { log.append("inner") }
                    while true { try yield(1) }
                }
                try yield.from(inner)
            }
            try outer.start()
            try outer.close()
            #expect(log == ["inner", "outer"])
            #expect(outer.state == .closed)
        }

        @Test func delegatingToAStartedCoroutineIsRefused() throws {
            let inner = Self.adder("x")
            try inner.start()
            let outer = Coroutine<Int, String, Int> { yield in try yield.from(inner) }
            #expect(throws: CoroutineError.alreadyStarted) { try outer.start() }
            try inner.close()
        }

        @Test func generatorsDelegateToSequencesAndGenerators() {
            let gen = Generator<Int> { yield in
                try yield.from([1, 2])
                try yield.from(Generator<Int> { yield in
                    try yield(3)
                    try yield(4)
                })
                try yield(5)
            }
            #expect(Array(gen) == [1, 2, 3, 4, 5])
        }

        @Test func recursiveDelegationWalksATree() {
            indirect enum Tree { case leaf(Int), node(Tree, Tree) }
            func walk(_ t: Tree) -> Generator<Int> {
                Generator { yield in
                    switch t {
                    case .leaf(let v): try yield(v)
                    case .node(let l, let r):
                        try yield.from(walk(l))
                        try yield.from(walk(r))
                    }
                }
            }
            let tree = Tree.node(.node(.leaf(1), .leaf(2)), .node(.leaf(3), .node(.leaf(4), .leaf(5))))
            let before = stacksInUse
            #expect(Array(walk(tree)) == [1, 2, 3, 4, 5])
            #expect(stacksInUse == before)
        }
    }
}

// MARK: - Generator

extension CoroutineTests {
    @Suite struct CoroutineGeneratorTests {
        @Test func contractExample() {
            let gen = Generator<Int> { yield in for i in 0..<3 { try yield(i) } }
            #expect(Array(gen) == [0, 1, 2])
            #expect(gen.state == .closed)
            #expect(gen.next() == nil)
            #expect(Array(gen) == [])  // single pass, like a Python generator
        }

        @Test func theBodyRunsOnlyAsFarAsConsumed() {
            var produced: [Int] = []
            let gen = Generator<Int> { yield in
                for i in 0..<100 {
                    produced.append(i)
                    try yield(i)
                }
            }
            #expect(produced.isEmpty)
            #expect(gen.state == .created)
            #expect(Array(gen.prefix(3)) == [0, 1, 2])
            #expect(produced == [0, 1, 2])
            #expect(gen.next() == 3)
            #expect(produced == [0, 1, 2, 3])
        }

        @Test func abandonedMidwayRunsItsDefersAndFreesItsStack() {
            let before = stacksInUse
            let mappedBefore = CoroutineStackPool.shared.mapped.load(ordering: .relaxed)
            var log: [String] = []
            do {
                let gen = Generator<Int> { yield in
                    log.append("start")
                    defer { log.append("defer") }
                    for i in 0... { try yield(i) }
                }
                #expect(gen.next() == 0)
                #expect(gen.next() == 1)
                #expect(stacksInUse == before + 1)
                #expect(log == ["start"])
            }
            #expect(log == ["start", "defer"])
            #expect(stacksInUse == before)
            // Back in the pool (or unmapped): never more mapped than before plus one.
            #expect(CoroutineStackPool.shared.mapped.load(ordering: .relaxed) <= mappedBefore + 1)
        }

        @Test func abandonedIteratorOfAForLoopIsUnwound() {
            let before = stacksInUse
            var cleaned = 0
            for _ in 0..<1000 {
                let gen = Generator<Int> { yield in
                    defer { cleaned += 1 }
                    for i in 0..<10 { try yield(i) }
                }
                for x in gen where x == 4 { break }
            }
            #expect(cleaned == 1000)
            #expect(stacksInUse == before)
        }

        @Test func anUnstartedGeneratorCostsNoStack() {
            let before = stacksInUse
            var ran = false
            do {
                let gen = Generator<Int> { yield in ran = true; try yield(1) }
                #expect(gen.state == .created)
                #expect(stacksInUse == before)
            }
            #expect(!ran)
        }

        @Test func nextOrThrowRethrowsTheBodysError() throws {
            let gen = Generator<Int> { yield in
                try yield(1)
                throw Oops(code: 1)
            }
            #expect(try gen.nextOrThrow() == 1)
            #expect(throws: Oops(code: 1)) { try gen.nextOrThrow() }
            #expect(try gen.nextOrThrow() == nil)
            #expect(gen.state == .closed)
        }

        @Test func generatorsNestAndRunInsideEachOther() {
            let evens = Generator<Int> { yield in
                let inner = Generator<Int> { yield in for i in 0..<10 { try yield(i) } }
                for x in inner where x % 2 == 0 {
                    try yield(x * 10)
                }
            }
            #expect(Array(evens) == [0, 20, 40, 60, 80])
        }

        @Test func aDeepBodyYieldsFromAnyDepth() {
            func down(_ n: Int, _ yield: Generator<Int>.Yield) throws {
                if n == 0 { return }
                try yield(n)
                try down(n - 1, yield)
            }
            let gen = Generator<Int> { yield in try down(100, yield) }
            #expect(Array(gen) == Array((1...100).reversed()))
        }

        @Test func aCustomStackSizeWorks() {
            let gen = Generator<Int>(stackSize: 256 * 1024) { yield in
                var big = [Int](repeating: 1, count: 1000)
                big[0] = 7
                try yield(big.reduce(0, +))
            }
            #expect(Array(gen) == [1006])
        }

        @Test func millionResumesDoNotGrowMemory() {
            let gen = Generator<Int> { yield in
                var i = 0
                while true {
                    try yield(i)
                    i &+= 1
                }
            }
            for _ in 0..<10_000 { _ = gen.next() }  // warm up
            let before = gt_resident_bytes()
            var sum = 0
            for _ in 0..<1_000_000 { sum &+= gen.next()! }
            let after = gt_resident_bytes()
            let expected = (10_000..<1_010_000).reduce(0, &+)
            #expect(sum == expected)
            #expect(after < before + 8 * 1024 * 1024, "resident grew from \(before) to \(after)")
        }

        @Test func hundredThousandGeneratorsDoNotLeak() {
            let before = stacksInUse
            for _ in 0..<1_000 { _ = Generator<Int> { yield in try yield(1) }.next() }  // warm up
            let residentBefore = gt_resident_bytes()
            var total = 0
            for n in 0..<100_000 {
                let gen = Generator<Int> { yield in
                    try yield(n)
                    try yield(n)
                }
                total &+= gen.next()!  // abandoned while suspended
            }
            let residentAfter = gt_resident_bytes()
            #expect(total == (0..<100_000).reduce(0, +))
            #expect(stacksInUse == before)
            #expect(CoroutineStackPool.shared.pooledCount <= CoroutineStackPool.limit)
            #expect(residentAfter < residentBefore + 16 * 1024 * 1024, "resident grew from \(residentBefore) to \(residentAfter)")
        }

        @Test func insideGreenThreadsThatMigrateBetweenWorkers() throws {
            let rt = Runtime(workers: 2)
            defer { rt.shutdown() }
            // Times a consumer resumed its suspended generator on another OS
            // thread than the previous resume. Steals and timer wake-ups
            // (a sleeper is requeued on whichever worker fires its timer)
            // decide when that happens, so rounds repeat until it has.
            let moves = Atomic<Int>(0)
            let deadline = gt_now_ns() + 10_000_000_000
            repeat {
                let sums = try rt.run { () throws -> [Int] in
                    let handles = (0..<8).map { k in
                        go { () -> Int in
                            let gen = Generator<Int> { yield in
                                var inBody = 0
                                for i in 0..<200 {
                                    inBody += 1
                                    try yield(k * 1000 + i)
                                    // Park the green thread on the generator's stack.
                                    if i % 7 == 0 { GreenThread.yield() }
                                }
                                try yield(-inBody)
                            }
                            var sum = 0
                            var expected = 0
                            var last = gt_current_worker()
                            while let v = gen.next() {
                                if v < 0 {
                                    #expect(v == -200)
                                    break
                                }
                                #expect(v == k * 1000 + expected)
                                expected += 1
                                sum += v
                                // Either may resume us on the other worker.
                                if expected % 16 == 0 {
                                    GreenThread.sleep(for: .microseconds(50))
                                } else {
                                    GreenThread.yield()
                                }
                                // Out of line on purpose: glibc's pthread_self() is `const`, and
                                // an optimised build reuses the value from before the yield.
                                let now = gt_current_worker()
                                if now != last { moves.add(1, ordering: .relaxed) }
                                last = now
                            }
                            #expect(expected == 200)
                            return sum
                        }
                    }
                    return try joinAll(handles)
                }
                #expect(sums == (0..<8).map { k in (0..<200).reduce(0) { $0 + k * 1000 + $1 } })
            } while moves.load(ordering: .relaxed) == 0 && gt_now_ns() < deadline
            #expect(moves.load(ordering: .relaxed) > 0, "no generator was ever resumed from another worker")
        }

        @Test func anInoutAccessHeldAcrossYieldsSurvivesMigration() throws {
            let rt = Runtime(workers: 2)
            defer { rt.shutdown() }
            let totals = try rt.run { () throws -> [Int] in
                let handles = (0..<4).map { _ in
                    go { () -> Int in
                        let store = Store()
                        let other = Store()
                        let gen = Generator<Int> { yield in try fill(&store.items, yield) }
                        var last = 0
                        for n in gen {
                            #expect(n == last + 1)
                            last = n
                            other.reads += 1  // the caller's own accesses in between
                            GreenThread.yield()
                        }
                        return store.items.count + other.reads
                    }
                }
                return try joinAll(handles)
            }
            #expect(totals == [200, 200, 200, 200])
        }
    }
}

// MARK: - Greenlet

/// Runs `body` on a new OS thread and waits for it.
private func onAnotherThread(_ body: @escaping () -> Void) {
    final class Job { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    let job = Unmanaged.passRetained(Job(body)).toOpaque()
    var handle: UInt64 = 0
    let err = gt_thread_start({ raw in
        let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
        job.body()
    }, job, &handle)
    precondition(err == 0)
    gt_thread_join(handle)
}

extension CoroutineTests {
    @Suite struct CoroutineGreenletTests {
        /// greenlet's documentation example: test1 prints 12, switches to
        /// test2 which prints 56 and switches back; test1 prints 34 and
        /// finishes, returning to the main greenlet. 78 never prints.
        @Test func classicExampleOrder() throws {
            let before = stacksInUse
            var order: [Int] = []
            var gr1: Greenlet?
            var gr2: Greenlet?
            gr1 = Greenlet { _ in
                order.append(12)
                try gr2!.switch()
                order.append(34)
            }
            gr2 = Greenlet { _ in
                order.append(56)
                try gr1!.switch()
                order.append(78)
            }
            try gr1!.switch()
            #expect(order == [12, 56, 34])
            #expect(gr1!.isDead)
            #expect(gr2!.isActive)
            #expect(!gr2!.isDead)
            #expect(stacksInUse == before + 1)  // gr1's stack went back at once
            // The closures capture each other's variables: break the cycle.
            gr2 = nil  // abandoned while suspended: unwound, 78 still not printed
            gr1 = nil
            #expect(order == [12, 56, 34])
            #expect(stacksInUse == before)
        }

        @Test func valuesTravelBothWaysAndTheParentGetsTheReturnValue() throws {
            let main = Greenlet.current
            #expect(main.parent == nil)
            var seenInside: [String] = []
            let child = Greenlet { first -> Int in
                seenInside.append(first as! String)
                #expect(Greenlet.current.parent === main)
                let second = try main.switch("from child")
                seenInside.append(second as! String)
                return 42
            }
            #expect(child.parent === main)
            #expect(try child.switch("hello") as? String == "from child")
            #expect(child.isActive)
            #expect(try child.switch("again") as? Int == 42)
            #expect(child.isDead)
            #expect(seenInside == ["hello", "again"])
            #expect(Greenlet.current === main)
        }

        @Test func switchingToADeadGreenletGoesToItsParent() throws {
            let g = Greenlet { _ in 1 }
            #expect(try g.switch() as? Int == 1)
            #expect(g.isDead)
            // The parent is the caller itself: the value comes straight back.
            #expect(try g.switch("echo") as? String == "echo")
        }

        @Test func anErrorEscapingABodyIsThrownInTheParent() throws {
            let g = Greenlet { _ in throw Oops(code: 7) }
            #expect(throws: Oops(code: 7)) { try g.switch() }
            #expect(g.isDead)
        }

        @Test func throwRaisesAtThePendingSwitch() throws {
            let main = Greenlet.current
            let g = Greenlet { _ -> String in
                do {
                    try main.switch("waiting")
                    return "not reached"
                } catch let e as Oops {
                    return "caught \(e.code)"
                }
            }
            #expect(try g.switch() as? String == "waiting")
            #expect(try g.throw(Oops(code: 3)) as? String == "caught 3")
            #expect(g.isDead)
        }

        @Test func throwingGreenletExitEndsItQuietly() throws {
            let main = Greenlet.current
            var deferRan = false
            let g = Greenlet { _ in
                defer { deferRan = true }
                try main.switch()
            }
            try g.switch()
            let value = try g.throw()
            #expect(value is GreenletExit)
            #expect(deferRan)
            #expect(g.isDead)
        }

        @Test func throwIntoAnUnstartedGreenletKillsItWithoutRunning() throws {
            var ran = false
            let g = Greenlet { _ in ran = true }
            #expect(throws: Oops(code: 2)) { try g.throw(Oops(code: 2)) }
            #expect(g.isDead)
            #expect(!ran)
        }

        @Test func abandoningASuspendedGreenletUnwindsIt() throws {
            let before = stacksInUse
            var log: [String] = []
            do {
                let main = Greenlet.current
                let g = Greenlet { _ in
                    defer { log.append("defer") }
                    do {
                        try main.switch()
                    } catch is GreenletExit {
                        log.append("exit")
                        throw GreenletExit()
                    }
                }
                try g.switch()
                #expect(stacksInUse == before + 1)
            }
            #expect(log == ["exit", "defer"])
            #expect(stacksInUse == before)
        }

        @Test func aChainOfGreenletsReturnsThroughItsParents() throws {
            var order: [String] = []
            let outer = Greenlet { _ -> String in
                let inner = Greenlet { _ -> String in
                    order.append("inner")
                    return "inner done"
                }
                #expect(inner.parent === Greenlet.current)
                let r = try inner.switch() as! String
                order.append("outer got \(r)")
                return "outer done"
            }
            #expect(try outer.switch() as? String == "outer done")
            #expect(order == ["inner", "outer got inner done"])
        }

        @Test func switchingFromAnotherThreadThrows() throws {
            let main = Greenlet.current
            let g = Greenlet { _ in try main.switch(1) }
            try g.switch()
            let errors = Mutex<[GreenletError]>([])
            nonisolated(unsafe) let foreign = g
            onAnotherThread {
                do {
                    try foreign.switch()
                } catch let e as GreenletError {
                    errors.withLock { $0.append(e) }
                } catch {}
                do {
                    try foreign.throw()
                } catch let e as GreenletError {
                    errors.withLock { $0.append(e) }
                } catch {}
            }
            #expect(errors.withLock { $0 } == [.wrongThread, .wrongThread])
            #expect(g.isActive)
            try g.switch()  // still fine on its own thread
            #expect(g.isDead)
        }

        @Test func aGreenThreadThatMovedCannotSwitchToItsGreenlets() throws {
            let rt = Runtime(workers: 2)
            defer { rt.shutdown() }
            let moved = Atomic<Int>(0)
            let refused = Atomic<Int>(0)
            let deadline = gt_now_ns() + 10_000_000_000
            repeat {
                _ = try rt.run { () throws -> Int in
                    let handles = (0..<8).map { _ in
                        go { () -> Int in
                            let g = Greenlet { _ in 1 }
                            let home = gt_current_worker()
                            for i in 0..<200 where gt_current_worker() == home {
                                if i % 8 == 0 { GreenThread.sleep(for: .microseconds(50)) } else { GreenThread.yield() }
                            }
                            if gt_current_worker() == home { return try g.switch() as! Int }
                            moved.add(1, ordering: .relaxed)
                            do {
                                _ = try g.switch()
                            } catch GreenletError.wrongThread {
                                refused.add(1, ordering: .relaxed)
                            }
                            return 0
                        }
                    }
                    return try joinAll(handles).count
                }
            } while moved.load(ordering: .relaxed) == 0 && gt_now_ns() < deadline
            #expect(moved.load(ordering: .relaxed) > 0)
            #expect(refused.load(ordering: .relaxed) == moved.load(ordering: .relaxed))
        }

        @Test func classicExampleInsideAGreenThread() throws {
            let rt = Runtime(workers: 2)
            defer { rt.shutdown() }
            let order = try rt.run { () throws -> [Int] in
                var order: [Int] = []
                var gr1: Greenlet?
                var gr2: Greenlet?
                gr1 = Greenlet { _ in
                    order.append(12)
                    try gr2!.switch()
                    order.append(34)
                }
                gr2 = Greenlet { _ in
                    order.append(56)
                    try gr1!.switch()
                    order.append(78)
                }
                try gr1!.switch()
                gr2 = nil
                gr1 = nil
                return order
            }
            #expect(order == [12, 56, 34])
        }
    }
}
