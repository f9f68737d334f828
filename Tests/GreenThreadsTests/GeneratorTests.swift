import CContext
import Synchronization
import Testing
@testable import GreenThreads

private final class Store { var items: [Int] = []; var reads = 0 }

/// Yields while holding a (dynamically checked) inout access open.
private func fill(_ items: inout [Int], _ yield: Generator<Int>.Yield) throws {
    for i in 0..<100 {
        items.append(i)
        try yield(items.count)  // the access to `items` stays open here
    }
}

/// Runs `body` while holding a (dynamically checked) inout access to `value`.
private func whileAccessing(_ value: inout Int, _ body: () -> Void) {
    value += 1
    body()
}

extension CoroutineSuites {
    @Suite struct GeneratorTests {
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
            let before = coroutineStacksInUse
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
                #expect(coroutineStacksInUse == before + 1)
                #expect(log == ["start"])
            }
            #expect(log == ["start", "defer"])
            #expect(coroutineStacksInUse == before)
            // Back in the pool (or unmapped): never more mapped than before plus one.
            #expect(CoroutineStackPool.shared.mapped.load(ordering: .relaxed) <= mappedBefore + 1)
        }

        @Test func abandonedIteratorOfAForLoopIsUnwound() {
            let before = coroutineStacksInUse
            var cleaned = 0
            for _ in 0..<1000 {
                let gen = Generator<Int> { yield in
                    defer { cleaned += 1 }
                    for i in 0..<10 { try yield(i) }
                }
                for x in gen where x == 4 { break }
            }
            #expect(cleaned == 1000)
            #expect(coroutineStacksInUse == before)
        }

        @Test func anUnstartedGeneratorCostsNoStack() {
            let before = coroutineStacksInUse
            var ran = false
            do {
                let gen = Generator<Int> { yield in ran = true; try yield(1) }
                #expect(gen.state == .created)
                #expect(coroutineStacksInUse == before)
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
            let before = coroutineStacksInUse
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
            #expect(coroutineStacksInUse == before)
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
                                    try GreenThread.sleep(for: .microseconds(50))
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

        @Test func theCallersAndTheBodysOpenAccessesStayApartAcrossThreads() {
            // The body suspends inside its access to `store.items`; each
            // resume comes from a new OS thread whose caller holds an access
            // of its own. The body's access must leave with it at every
            // yield (else the caller's read of `store.items` traps, and the
            // thread reports an access after the caller's ended) and come
            // back at every resume (else the body's append traps or ends
            // its access on the wrong thread).
            let store = Store()
            let holder = Store()
            let gen = Generator<Int> { yield in try fill(&store.items, yield) }
            var seen: [Int] = []
            var counts: [Int] = []
            var openInside: [Bool] = []
            var openAfter: [Bool] = []
            for round in 0..<20 {
                onAnotherThread {
                    let resume = {
                        seen.append(gen.next() ?? -1)
                        counts.append(store.items.count)
                    }
                    if round % 2 == 0 {
                        whileAccessing(&holder.reads) {
                            resume()
                            openInside.append(gt_exclusivity_thread_has_accesses())
                        }
                    } else {
                        resume()
                    }
                    openAfter.append(gt_exclusivity_thread_has_accesses())
                }
            }
            #expect(seen == Array(1...20))
            #expect(counts == Array(1...20))
            #expect(openInside == Array(repeating: true, count: 10))
            #expect(openAfter == Array(repeating: false, count: 20))
            #expect(holder.reads == 10)
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
