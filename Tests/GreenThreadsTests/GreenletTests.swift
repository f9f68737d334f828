import CContext
import Synchronization
import Testing
@testable import GreenThreads

extension CoroutineSuites {
    @Suite struct GreenletTests {
        /// greenlet's documentation example: test1 prints 12, switches to
        /// test2 which prints 56 and switches back; test1 prints 34 and
        /// finishes, returning to the main greenlet. 78 never prints.
        @Test func classicExampleOrder() throws {
            let before = coroutineStacksInUse
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
            #expect(coroutineStacksInUse == before + 1)  // gr1's stack went back at once
            // The closures capture each other's variables: break the cycle.
            gr2 = nil  // abandoned while suspended: unwound, 78 still not printed
            gr1 = nil
            #expect(order == [12, 56, 34])
            #expect(coroutineStacksInUse == before)
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
            let before = coroutineStacksInUse
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
                #expect(coroutineStacksInUse == before + 1)
            }
            #expect(log == ["exit", "defer"])
            #expect(coroutineStacksInUse == before)
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
                                if i % 8 == 0 { try GreenThread.sleep(for: .microseconds(50)) } else { GreenThread.yield() }
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
