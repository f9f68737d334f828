import CContext
import Synchronization
import Testing
@testable import GreenThreads

// MARK: - Coroutine: Python's generator protocol

extension CoroutineSuites {
    @Suite struct CoroutineTests {
        /// A running total, step by step.
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
            let before = coroutineStacksInUse
            try co.close()
            #expect(co.state == .closed)
            #expect(log == ["exit", "defer"])
            #expect(coroutineStacksInUse == before - 1)
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
            let before = coroutineStacksInUse
            var log: [String] = []
            do {
                let co = Coroutine<Int, Int, Void> { yield in
                    defer { log.append("defer") }
                    while true { try yield(0) }
                }
                try co.start()
                #expect(coroutineStacksInUse == before + 1)
            }
            #expect(log == ["defer"])
            #expect(coroutineStacksInUse == before)
        }
    }
}

// MARK: - yield.from

extension CoroutineSuites {
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
            let before = coroutineStacksInUse
            #expect(Array(walk(tree)) == [1, 2, 3, 4, 5])
            #expect(coroutineStacksInUse == before)
        }
    }
}
