#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Finished green threads are reused by their worker's FiberCache: none of
/// an earlier thread's outcome may show through in a later one.
@Suite("Fiber reuse", .serialized)
struct FiberReuseTests {
    /// A reproducible stream of choices (xorshift64*).
    struct Choices {
        var state: UInt64
        mutating func next(_ n: Int) -> Int {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Int((state &* 0x2545_F491_4F6C_DD1D) >> 33) % n
        }
    }

    /// 10^5 spawns of threads that return, throw, are cancelled (before or
    /// while they run) or are never joined, in a random mix, with up to 64
    /// alive at once: each join returns exactly its own thread's outcome,
    /// every copy of a handle agrees, a thread nobody cancelled never sees
    /// a cancellation, a fresh handle is never finished before its thread
    /// ran, and IDs stay unique among live threads.
    @Test(arguments: [1, 2, 4])
    func recycledFibersCarryNothingOver(workers: Int) throws {
        let unhandled = Atomic<Int>(0)
        let rt = Runtime(configuration: .init(workers: workers, unhandledErrorHandler: { _, error in
            if error is Boom { unhandled.add(1, ordering: .relaxed) }
        }))
        defer { rt.shutdown() }
        let seed = UInt64(0x9E37_79B9) &* UInt64(workers + 1)
        let iterations = 100_000
        let unjoinedErrors = try rt.run { () throws -> Int in
            var choices = Choices(state: seed)
            // (handle, what it must produce): value i, error i, or cancelled.
            var live: [(JoinHandle<Int>, Int, kind: Int)] = []
            var unjoinedErrors = 0
            let gate = Atomic<Bool>(false)
            func settle(_ entry: (JoinHandle<Int>, Int, kind: Int)) throws {
                let (h, i, kind) = entry
                let copy = h
                switch kind {
                case 0:
                    #expect(try h.join() == i, "seed \(seed)")
                    #expect(try copy.join() == i, "seed \(seed)")
                case 1:
                    #expect(throws: Boom(code: i)) { try h.join() }
                    #expect(throws: Boom(code: i)) { try copy.join() }
                default:
                    // Cancelled: it returns -i if it saw the flag, else i
                    // (the cancel came after its check).
                    let v = try h.join()
                    #expect(v == -i || v == i, "seed \(seed)")
                    #expect(try copy.join() == v)
                }
                #expect(h.isFinished)
            }
            for i in 1...iterations {
                let kind = choices.next(8)
                let h: JoinHandle<Int>
                switch kind {
                case 0, 1, 2:  // a value, after a yield or two
                    let yields = choices.next(3)
                    h = go { () -> Int in
                        for _ in 0..<yields { GreenThread.yield() }
                        // Nobody cancels this one: a flag here came from an
                        // earlier user of the fiber.
                        if GreenThread.isCancelled { return Int.min }
                        return i
                    }
                    live.append((h, i, 0))
                case 3:  // an error, joined
                    h = go { () throws -> Int in
                        if GreenThread.isCancelled { return Int.min }
                        throw Boom(code: i)
                    }
                    live.append((h, i, 1))
                case 4:  // an error nobody joins: must reach the handler
                    go { () throws -> Int in throw Boom(code: i) }
                    unjoinedErrors += 1
                    continue
                case 5:  // held back by a gate: a reused fiber must not look finished
                    h = go { () -> Int in
                        while !gate.load(ordering: .acquiring) { GreenThread.yield() }
                        return i
                    }
                    #expect(!h.isFinished, "seed \(seed)")
                    gate.store(true, ordering: .releasing)
                    #expect(try h.join() == i)
                    gate.store(false, ordering: .releasing)
                    continue
                default:  // cancelled, before or while it runs
                    h = go { () -> Int in
                        GreenThread.yield()
                        return GreenThread.isCancelled ? -i : i
                    }
                    if choices.next(2) == 0 { GreenThread.yield() }
                    h.cancel()
                    live.append((h, i, 2))
                }
                if live.count >= 64 || choices.next(4) == 0 {
                    // Settle a random one (out of spawn order).
                    let k = choices.next(live.count)
                    try settle(live.remove(at: k))
                }
            }
            for entry in live { try settle(entry) }
            return unjoinedErrors
        }
        // Unjoined errors are reported as their fibers go (never cached).
        let deadline = ContinuousClock.now + .seconds(10)
        while unhandled.load(ordering: .relaxed) < unjoinedErrors && ContinuousClock.now < deadline {
            usleep(1_000)
        }
        #expect(unhandled.load(ordering: .relaxed) == unjoinedErrors)
    }

    /// IDs of live threads stay distinct while their fibers are recycled.
    @Test func liveIDsAreUnique() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run { () throws in
            for _ in 0..<200 {
                let hs = (0..<50).map { _ in go { GreenThread.current! } }
                let ids = try joinAll(hs)
                #expect(Set(ids).count == hs.count)
                #expect(ids == hs.map(\.id))
            }
        }
    }

    /// The cache is used: a thread spawned right after another finished on
    /// a one-worker runtime takes the finished one's object.
    @Test func aFinishedFiberIsReused() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run { () throws in
            let worker = Worker.current!
            // (No `go { }` inside an #expect: a closure in the macro's
            // expansion and one outside it were given one symbol, and the
            // second spawn ran the first closure.)
            let first = try go { 1 }.join()
            #expect(first == 1)
            // Its retirement happens on the switch back to us.
            GreenThread.yield()
            let cached = worker.local.pointee.fibers.count
            #expect(cached >= 1)
            let h = go { 2 }
            #expect(worker.local.pointee.fibers.count == cached - 1)
            let second = try h.join()
            #expect(second == 2)
        }
    }

    /// Results that are not trivial values keep their deinit timing: the
    /// fiber is not cached, so the value goes with the last handle.
    @Test func nonTrivialResultsAreNotKeptAlive() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        final class Box: Sendable {}
        try rt.run { () throws in
            for _ in 0..<100 {
                weak var seen: Box?
                do {
                    let h = go { Box() }
                    seen = try h.join()
                    #expect(seen != nil)
                }
                // The scheduler drops its reference at retirement, a switch
                // after the join returned (on a worker that a loaded machine
                // may deschedule for a while).
                let deadline = ContinuousClock.now + .seconds(5)
                while seen != nil && ContinuousClock.now < deadline { GreenThread.yield() }
                #expect(seen == nil)
            }
        }
    }

    /// Shutdown releases the cached fibers (they hold the core alive).
    @Test func shutdownReleasesCachedFibers() throws {
        weak var core: RuntimeCore?
        do {
            let rt = Runtime(workers: 2)
            core = rt.core
            try rt.run { () throws in
                for _ in 0..<10 {
                    let hs = (0..<1000).map { i in go { i } }
                    _ = try joinAll(hs)
                }
            }
            #if DEBUG
            rt.shutdown()
            #expect(rt.core.fiberObjects.load(ordering: .relaxed) == 0)
            #endif
        }
        #expect(core == nil)
    }
}
