import Synchronization
import Testing
@testable import GreenThreads

/// The injection queue on its own, with fibers that never run
/// (DetachedCore): FIFO order, batches both ways, and OS threads pushing
/// and popping at once.
@Suite("Injector")
struct InjectorTests {
    /// Walks a chain returned by `popBatch` (linked through `queueNext`,
    /// ending in nil), unlinking it as the workers do.
    private static func drain(_ chain: Unmanaged<Fiber>?) -> [UInt] {
        var out: [UInt] = []
        var next = chain
        while let f = next {
            out.append(f.bits)
            next = f._withUnsafeGuaranteedRef { fiber in
                let rest = fiber.queueNext
                fiber.queueNext = nil
                return rest
            }
        }
        return out
    }

    @Test func firstInFirstOut() {
        let detached = DetachedCore()
        let fibers = (0..<5).map { _ in detached.fiber() }
        defer { for f in fibers { f.release() } }
        let q = Injector()
        #expect(q.isEmpty)
        #expect(q.pop() == nil)
        for f in fibers.prefix(3) { q.push(f) }
        #expect(q.pop()?.bits == fibers[0].bits)
        for f in fibers.suffix(2) { q.push(f) }
        #expect(!q.isEmpty)
        var order: [UInt] = []
        while let f = q.pop() { order.append(f.bits) }
        #expect(order == [1, 2, 3, 4].map { fibers[$0].bits })
        #expect(q.isEmpty)
    }

    /// A batch pushed in one go keeps its order behind what was queued;
    /// `popBatch` takes at most `max`, as one nil-terminated chain, and
    /// leaves the rest in order.
    @Test func batchPushAndBatchPop() {
        let detached = DetachedCore()
        let fibers = (0..<10).map { _ in detached.fiber() }
        defer { for f in fibers { f.release() } }
        let q = Injector()
        q.push(FiberBatch())  // empty: nothing
        #expect(q.isEmpty)
        q.push(fibers[0])
        var batch = FiberBatch()
        for f in fibers[1...] { batch.append(f.bits) }
        #expect(batch.count == 9)
        q.push(batch)

        #expect(Self.drain(q.popBatch(max: 4)) == fibers[0..<4].map(\.bits))
        #expect(Self.drain(q.popBatch(max: 1)) == [fibers[4].bits])
        #expect(Self.drain(q.popBatch(max: 100)) == fibers[5...].map(\.bits))
        #expect(q.popBatch(max: 100) == nil)
        #expect(q.isEmpty)

        // The queue works again once emptied (head and tail were reset).
        q.push(fibers[9])
        #expect(Self.drain(q.popBatch(max: 8)) == [fibers[9].bits])
    }

    /// OS threads push (singly and in batches) while others pop batches:
    /// every fiber comes out exactly once, and each producer's fibers come
    /// out in the order it pushed them.
    @Test func concurrentPushAndPopLoseNothing() {
        let producers = 4
        let perProducer = 5_000
        let detached = DetachedCore()
        let fibers = (0..<(producers * perProducer)).map { _ in detached.fiber() }
        defer { for f in fibers { f.release() } }
        var indexOf: [UInt: Int] = [:]
        for (i, f) in fibers.enumerated() { indexOf[f.bits] = i }
        let index = indexOf
        let bits = fibers.map(\.bits)
        let q = Injector()
        let seen = Marks(count: fibers.count)
        let popped = Atomic<Int>(0)
        let outOfOrder = Atomic<Int>(0)
        let total = fibers.count

        let pushers = (0..<producers).map { p in
            startThread {
                let mine = bits[(p * perProducer)..<((p + 1) * perProducer)]
                var i = mine.startIndex
                while i < mine.endIndex {
                    if i % 3 == 0 {
                        q.push(Worker.fiber(mine[i]))
                        i += 1
                    } else {
                        var batch = FiberBatch()
                        for b in mine[i..<min(i + 7, mine.endIndex)] { batch.append(b) }
                        q.push(batch)
                        i = min(i + 7, mine.endIndex)
                    }
                }
            }
        }
        let poppers = (0..<3).map { k in
            startThread {
                var last = Array(repeating: -1, count: producers)
                while popped.load(ordering: .relaxed) < total {
                    var chain = q.popBatch(max: 1 + k * 16)
                    var n = 0
                    while let f = chain {
                        let i = index[f.bits]!
                        seen.mark(i)
                        // One popper's view of one producer: increasing.
                        if i <= last[i / perProducer] { outOfOrder.add(1, ordering: .relaxed) }
                        last[i / perProducer] = i
                        chain = f._withUnsafeGuaranteedRef { fiber in
                            let rest = fiber.queueNext
                            fiber.queueNext = nil
                            return rest
                        }
                        n += 1
                    }
                    if n > 0 { popped.add(n, ordering: .relaxed) }
                }
            }
        }
        pushers.forEach { joinThread($0) }
        poppers.forEach { joinThread($0) }
        #expect(popped.load(ordering: .relaxed) == total)
        var bad = 0
        for i in 0..<total where seen.value(i) != 1 { bad += 1 }
        #expect(bad == 0)
        #expect(outOfOrder.load(ordering: .relaxed) == 0)
        #expect(q.isEmpty)
    }
}
