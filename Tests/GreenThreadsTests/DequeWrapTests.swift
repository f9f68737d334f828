import Synchronization
import Testing
@testable import GreenThreads

/// The deque at capacity 4, where a few operations reach the full deque and
/// `top`/`bottom` wrap the ring thousands of times; and what a worker does
/// when its deque is full (the spill to the injector).
@Suite("Deque wrap-around and overflow")
struct DequeWrapTests {
    @Test func capacityIsTheInitParameterAndDefaultsTo1024() {
        #expect(WorkStealingDeque().capacity == 1024)
        #expect(WorkStealingDeque(capacity: 4).capacity == 4)
    }

    /// A full deque refuses the push and keeps what it holds; one item
    /// taken from either end makes room for exactly one more, in the slot
    /// the ring reuses.
    @Test func fullDequeRefusesAndRecovers() {
        let d = WorkStealingDeque(capacity: 4)
        for i in 1...4 { #expect(d.push(UInt(i))) }
        #expect(!d.push(5))
        #expect(d.count == 4)
        #expect(d.stealOne() == 1)
        #expect(d.push(5))  // reuses slot 0
        #expect(!d.push(6))
        #expect(d.pop() == 5)
        #expect(d.push(6))
        #expect(!d.push(7))
        #expect(d.takeOldest() == 2)
        #expect(d.stealOne() == 3)
        #expect(d.pop() == 6)
        #expect(d.pop() == 4)
        #expect(d.pop() == nil)
        #expect(d.isEmpty)
    }

    /// Random pushes, pops, steals and oldest-first takes from one thread,
    /// checked step by step against an array: over 200,000 operations the
    /// indices wrap the 4-slot ring tens of thousands of times.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func matchesAModelOverManyWraps(seed: UInt64) {
        let d = WorkStealingDeque(capacity: 4)
        var model: [UInt] = []
        var rng = FastRandom(seed: seed)
        var next: UInt = 1
        var mismatches = 0
        var refusedPushes = 0
        for _ in 0..<200_000 {
            switch rng.next(below: 4) {
            case 0:
                let accepted = d.push(next)
                if accepted != (model.count < 4) { mismatches += 1 }
                if accepted { model.append(next) } else { refusedPushes += 1 }
                next += 1
            case 1:
                if d.pop() != model.popLast() { mismatches += 1 }
            case 2:
                if d.stealOne() != (model.isEmpty ? nil : model.removeFirst()) { mismatches += 1 }
            default:
                if d.takeOldest() != (model.isEmpty ? nil : model.removeFirst()) { mismatches += 1 }
            }
            if d.count != model.count || d.isEmptyForOwner != model.isEmpty { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(refusedPushes > 0)  // the full deque was reached
        #expect(next > 10_000)      // and the ring wrapped many times
    }

    /// The owner pushes and takes while thieves steal, on a 4-slot ring:
    /// a thief's read of a slot the owner is about to reuse is the race the
    /// read-before-CAS rule settles. Every item is taken exactly once.
    @Test(arguments: [1, 3])
    func everyItemTakenOnceOnASmallRing(thieves: Int) {
        let total = 200_000
        let d = WorkStealingDeque(capacity: 4)
        let seen = Marks(count: total + 1)
        let done = Atomic<Bool>(false)
        let stolen = Atomic<Int>(0)
        let threads = (0..<thieves).map { _ in
            startThread {
                var local = 0
                while !done.load(ordering: .acquiring) || !d.isEmpty {
                    if let x = d.stealOne() {
                        seen.mark(Int(x))
                        local += 1
                    }
                }
                stolen.add(local, ordering: .relaxed)
            }
        }
        var taken = 0
        var refused = 0
        var next = 1
        var rng = FastRandom(seed: 7)
        while next <= total {
            for _ in 0..<(1 + rng.next(below: 6)) where next <= total {
                if d.push(UInt(next)) { next += 1 } else { refused += 1; break }
            }
            for _ in 0..<rng.next(below: 4) {
                if let x = rng.next(below: 3) == 0 ? d.takeOldest() : d.pop() {
                    seen.mark(Int(x))
                    taken += 1
                }
            }
        }
        while let x = d.pop() {
            seen.mark(Int(x))
            taken += 1
        }
        done.store(true, ordering: .releasing)
        threads.forEach { joinThread($0) }
        #expect(taken + stolen.load(ordering: .relaxed) == total)
        var bad = 0
        for i in 1...total where seen.value(i) != 1 { bad += 1 }
        #expect(bad == 0)
        #expect(refused > 0)
    }

    /// A push onto a full worker deque spills: the new thread and the
    /// oldest half go to the node's injector in one batch (new one first,
    /// then oldest first), the newest half stays. Nothing is lost or
    /// duplicated, and a refill takes at most half a deque back.
    @Test func fullWorkerDequeSpillsHalfToTheInjector() {
        let detached = DetachedCore()
        let w = detached.worker()
        let capacity = w.deque.capacity
        let fibers = (0...capacity).map { _ in detached.fiber() }
        defer { for f in fibers { f.release() } }
        for f in fibers.prefix(capacity) { w.pushLocal(f) }
        #expect(w.deque.count == capacity)
        #expect(w.homeInjector.isEmpty)

        w.pushLocal(fibers[capacity])
        #expect(w.deque.count == capacity / 2)
        var spilled: [UInt] = []
        while let f = w.homeInjector.pop() { spilled.append(f.bits) }
        #expect(spilled == [fibers[capacity].bits] + fibers.prefix(capacity / 2).map(\.bits))
        var kept: [UInt] = []
        while let bits = w.deque.pop() { kept.append(bits) }
        #expect(kept == fibers[(capacity / 2)..<capacity].reversed().map(\.bits))

        // Refill: one to run, at most 64 more, never past half the deque.
        var batch = FiberBatch()
        for f in fibers { batch.append(f.bits) }
        w.homeInjector.push(batch)
        let first = w.takeInjected()
        #expect(first?.bits == fibers[0].bits)
        #expect(w.deque.count == 64)
        for _ in 0..<(capacity / 2 - 64) { #expect(w.deque.push(fibers[0].bits)) }
        #expect(w.takeInjected()?.bits == fibers[65].bits)
        #expect(w.deque.count == capacity / 2)  // no room: took only the one to run
        while w.deque.pop() != nil {}
        while w.homeInjector.pop() != nil {}
    }
}
