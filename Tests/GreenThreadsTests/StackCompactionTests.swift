import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Every long enough sleep is compacted, however few sleep.
private func compactingRuntime(workers: Int = 2, minimumSleep: Duration = .milliseconds(20)) -> Runtime {
    Runtime(configuration: .init(
        workers: workers,
        preemptionThreshold: nil, handoffThreshold: nil,
        stackCompaction: .init(minimumSleep: minimumSleep, minimumSleepers: 0)))
}

/// Polls (from an OS thread or a green thread) until `condition` holds;
/// throws after 30 s so that a bug fails the test instead of hanging it.
private func waitFor(_ what: String, _ condition: () -> Bool) throws {
    let start = gt_now_ns()
    while !condition() {
        guard gt_now_ns() - start < 30_000_000_000 else { throw Stuck(what: what) }
        if Worker.current?.local.pointee.current != nil {
            try GreenThread.sleep(for: .milliseconds(1))
        } else {
            usleep(1_000)
        }
    }
}

private struct Stuck: Error, CustomStringConvertible {
    let what: String
    var description: String { "still waiting for \(what) after 30 s" }
}

/// One Int per green thread, each written by its own thread and read after
/// a join (which orders the write before the read).
/// The sleepers' handles, written by the green thread that spawns them
/// before it publishes `heldOn` (release), read after that (acquire).
private final class SleeperHandles: @unchecked Sendable {
    var hs: [JoinHandle<FrameCheck>] = []
}

private final class Slots: @unchecked Sendable {
    private let p: UnsafeMutablePointer<Int>
    init(_ n: Int) {
        p = .allocate(capacity: n)
        p.initialize(repeating: -1, count: n)
    }
    deinit { p.deallocate() }
    subscript(i: Int) -> Int {
        get { p[i] }
        set { p[i] = newValue }
    }
}

private let wordsPerFrame = 32

@inline(__always)
private func pattern(_ seed: UInt64, _ i: Int) -> UInt64 {
    (seed &+ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03
}

/// What a deep sleeper found on its way back up.
struct FrameCheck: Sendable, Equatable {
    var frames = 0       // frames whose buffer was on this thread's stack
    var intact = 0       // ... and still held their pattern and checksum
    var parentsOK = 0    // ... whose pointer into the caller's frame still read right
}

/// Recurses `depth` frames. Each one keeps a 256-byte buffer on the stack
/// (a temporary allocation: stack memory, which the test checks), fills it
/// from `seed`, and passes a pointer to it down to the next frame. At the
/// bottom it calls `sleep`; on the way back every frame checks its buffer
/// (word by word and by checksum) and reads its parent's buffer through the
/// pointer it was given.
@inline(never)
func sleepDeep(depth: Int, seed: UInt64, parent: UnsafeMutablePointer<UInt64>?, parentSeed: UInt64,
               stack: ClosedRange<UInt>, sleep: () -> Void) -> FrameCheck {
    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: wordsPerFrame) { buf -> FrameCheck in
        var sum: UInt64 = 0
        for i in 0..<wordsPerFrame {
            buf[i] = pattern(seed, i)
            sum = sum &* 31 &+ buf[i]
        }
        var check: FrameCheck
        if depth == 0 {
            sleep()
            check = FrameCheck()
        } else {
            check = sleepDeep(depth: depth - 1, seed: seed &+ 7, parent: buf.baseAddress, parentSeed: seed,
                              stack: stack, sleep: sleep)
        }
        let address = UInt(bitPattern: buf.baseAddress)
        if stack.contains(address) {
            check.frames += 1
            var after: UInt64 = 0
            var words = true
            for i in 0..<wordsPerFrame {
                after = after &* 31 &+ buf[i]
                if buf[i] != pattern(seed, i) { words = false }
            }
            if words && after == sum { check.intact += 1 }
            if let parent {
                if (0..<wordsPerFrame).allSatisfy({ parent[$0] == pattern(parentSeed, $0) }) { check.parentsOK += 1 }
            } else {
                check.parentsOK += 1
            }
        }
        return check
    }
}

/// The calling green thread's stack, as an address range.
private func currentStackRange() -> ClosedRange<UInt> {
    let s = GreenThread.currentFiber!.stack
    let base = UInt(bitPattern: s.base)
    return base...(base + UInt(s.size) - 1)
}

/// Resident pages of a stack (mincore).
private func residentPages(_ s: gt_stack) -> Int {
    let page = Int(gt_page_size())
    var vec = [UInt8](repeating: 0, count: s.size / page)
    guard let base = s.base, mincore(base, s.size, &vec) == 0 else { return -1 }
    return vec.filter { $0 & 1 == 1 }.count
}

@Suite("Stack compaction", .serialized)
struct StackCompactionTests {
    @Test("compacted sleepers wake by their timer with every frame intact")
    func timerWakesIntactStacks() throws {
        let rt = compactingRuntime()
        defer { rt.shutdown() }
        let n = 200, depth = 24
        let checks = try rt.run { () throws -> [FrameCheck] in
            let hs = (0..<n).map { i in
                go { () -> FrameCheck in
                    sleepDeep(depth: depth, seed: UInt64(i) << 20, parent: nil, parentSeed: 0,
                              stack: currentStackRange()) {
                        _ = try? GreenThread.sleep(for: .milliseconds(300))
                    }
                }
            }
            return try joinAll(hs)
        }
        #expect(checks.count == n)
        for c in checks {
            #expect(c.frames == depth + 1, "a frame buffer was not on the green stack: \(c)")
            #expect(c.intact == c.frames)
            #expect(c.parentsOK == c.frames)
        }
        let s = rt.stats
        #expect(s.stackCompactions > 0, "\(s)")
        #expect(s.stacksCompacted == 0)
    }

    @Test("cancelled compacted sleepers wake intact; their pages were released while asleep")
    func cancelWakesCompactedStacks() throws {
        let rt = compactingRuntime()
        defer { rt.shutdown() }
        let n = 300, depth = 16
        let (checks, pages, bytes) = try rt.run { () throws -> ([FrameCheck], [Int], [Int]) in
            let hs = (0..<n).map { i in
                go { () -> FrameCheck in
                    sleepDeep(depth: depth, seed: UInt64(i) &* 1_000_003, parent: nil, parentSeed: 0,
                              stack: currentStackRange()) {
                        _ = try? GreenThread.sleep(for: .seconds(3600))
                    }
                }
            }
            try waitFor("\(n) compacted stacks") { rt.stats.stacksCompacted == n }
            let pages = hs.map { residentPages($0.fiber.stack) }
            let bytes = hs.map { $0.fiber.compactedBytes }
            for h in hs { h.cancel() }
            return (try joinAll(hs), pages, bytes)
        }
        for c in checks {
            #expect(c.frames == depth + 1)
            #expect(c.intact == c.frames)
            #expect(c.parentsOK == c.frames)
        }
        // Not one page of a compacted stack stays resident, and the copy
        // holds the frames (>= 16 buffers of 256 bytes) but not the stack.
        #expect(pages.allSatisfy { $0 == 0 }, "resident pages: \(pages.sorted().suffix(5))")
        #expect(bytes.allSatisfy { $0 >= (depth + 1) * 8 * wordsPerFrame && $0 < 128 * 1024 }, "\(bytes.prefix(5))")
        let s = rt.stats
        #expect(s.stackCompactions == n)
        #expect(s.stacksCompacted == 0)
    }

    /// A finished thread whose stack was compacted while it slept gives it
    /// back clean (the page it faulted in to finish is released, in a batch
    /// or once the worker falls idle), unlike a thread that only parked.
    @Test("the stacks of compacted sleepers return to the pool clean")
    func compactedStacksReturnClean() throws {
        let rt = compactingRuntime(workers: 1)
        defer { rt.shutdown() }
        let n = 100
        let ranges = try rt.run { () throws -> [(UInt, Int)] in
            let hs = (0..<n).map { _ in go { _ = try? GreenThread.sleep(for: .seconds(3600)) } }
            try waitFor("\(n) compacted stacks") { rt.stats.stacksCompacted == n }
            let stacks = hs.map { (UInt(bitPattern: $0.fiber.stack.base), $0.fiber.stack.size) }
            for h in hs { h.cancel() }
            for h in hs { try h.join() }
            return stacks
        }
        #expect(rt.stats.stackCompactions == n)
        let stacks = ranges.map { gt_stack(base: UnsafeMutableRawPointer(bitPattern: $0.0), size: $0.1,
                                           mapping: nil, mapping_size: 0, home: 0) }
        var resident = stacks.map(residentPages)
        let deadline = gt_now_ns() + 10_000_000_000
        while resident.contains(where: { $0 != 0 }) && gt_now_ns() < deadline {
            usleep(10_000)
            resident = stacks.map(residentPages)
        }
        #expect(resident.allSatisfy { $0 == 0 }, "resident pages: \(resident.sorted().suffix(5))")
    }

    /// Wakes race the compaction of the same sleep in every order: sleeps
    /// whose timers fire within a few hundred microseconds (while the batch
    /// that holds them is being claimed, copied or released), and cancels
    /// from another green thread at random moments. Every sleeper must come
    /// back intact, exactly once, and nothing may stay compacted.
    @Test("early wakes and cancels racing compaction, randomized")
    func wakesRaceCompaction() throws {
        #if DEBUG
        let rounds = 40
        #else
        let rounds = 150
        #endif
        let rt = compactingRuntime(minimumSleep: .zero)
        defer { rt.shutdown() }
        var rng = SystemRandomNumberGenerator()
        var total = 0
        for round in 0..<rounds {
            let n = 64 + Int.random(in: 0..<96, using: &rng)
            let sleeps = (0..<n).map { _ in Int64.random(in: 0..<600_000, using: &rng) }
            let cancelAt = (0..<n).map { _ in Int.random(in: 0..<3, using: &rng) == 0 }
            let spins = (0..<n).map { _ in Int.random(in: 0..<2_000, using: &rng) }
            let depth = 1 + round % 12
            let checks = try rt.run { () throws -> [FrameCheck] in
                let hs = (0..<n).map { i in
                    go { () -> FrameCheck in
                        sleepDeep(depth: depth, seed: UInt64(round * 1000 + i), parent: nil, parentSeed: 0,
                                  stack: currentStackRange()) {
                            _ = try? GreenThread.sleep(for: .nanoseconds(cancelAt[i] ? 3_600_000_000_000 : sleeps[i]))
                        }
                    }
                }
                // A canceller per half, so cancels come from two workers.
                let cancellers = [0, 1].map { half in
                    go {
                        for i in stride(from: half, to: n, by: 2) where cancelAt[i] {
                            var x = 0
                            for k in 0..<spins[i] { x &+= k }
                            if x & 1 == 1 { GreenThread.yield() }
                            hs[i].cancel()
                        }
                    }
                }
                try joinAll(cancellers)
                return try joinAll(hs)
            }
            #expect(checks.count == n)
            #expect(checks.allSatisfy { $0.frames == depth + 1 && $0.intact == $0.frames && $0.parentsOK == $0.frames },
                    "round \(round)")
            total += n
        }
        // The main thread of the last run retires just after run returned.
        try waitFor("every thread retired") { rt.stats.live == 0 && rt.stats.stacksCompacted == 0 }
        let s = rt.stats
        #expect(s.stacksCompacted == 0, "\(s)")
        #expect(s.stackCompactions > 0, "\(s)")
    }

    @Test("a compacted sleeper resumes intact on another worker")
    func compactedSleeperMigrates() throws {
        let rt = compactingRuntime()
        defer { rt.shutdown() }
        var migrated = 0
        var rounds = 0
        // One worker is held by a spinning green thread (sysmon is off, so
        // nothing takes over its queue); the cancels reach the other one.
        // The hog is the green thread that spawned the sleepers: they start
        // on its worker's deque (the idle one steals some), and its own
        // sleep's timer fires on that worker, so it holds the worker where
        // most of them slept. Sleepers that slept there must move.
        while migrated == 0 && rounds < 20 {
            rounds += 1
            let n = 64
            let before = Slots(n), after = Slots(n)
            let handles = SleeperHandles()
            let release = Atomic<Bool>(false)
            let heldOn = Atomic<Int>(-1)
            let hog = rt.spawn {
                handles.hs = (0..<n).map { i in
                    go { () -> FrameCheck in
                        sleepDeep(depth: 8, seed: UInt64(i), parent: nil, parentSeed: 0, stack: currentStackRange()) {
                            before[i] = Worker.current!.index
                            _ = try? GreenThread.sleep(for: .seconds(3600))
                            after[i] = Worker.current!.index
                        }
                    }
                }
                try waitFor("\(n) compacted sleepers") { rt.stats.stacksCompacted == n }
                heldOn.store(Worker.current!.index, ordering: .releasing)
                while !release.load(ordering: .relaxed) { gt_cpu_relax() }
            }
            try waitFor("the hog to hold its worker") { heldOn.load(ordering: .acquiring) >= 0 }
            let hs = handles.hs
            for h in hs { h.cancel() }
            let checks = try hs.map { try $0.join() }
            release.store(true, ordering: .relaxed)
            try hog.join()
            #expect(checks.allSatisfy { $0.frames == 9 && $0.intact == 9 && $0.parentsOK == 9 })
            let held = heldOn.load(ordering: .acquiring)
            for i in 0..<n {
                #expect(after[i] != held)
                if before[i] != after[i] { migrated += 1 }
            }
        }
        #expect(migrated > 0, "no sleeper moved in \(rounds) rounds")
        #expect(rt.stats.stacksCompacted == 0)
    }

    @Test("shutdown unwinds compacted sleepers and leaks nothing")
    func shutdownWithCompactedSleepers() throws {
        let rt = compactingRuntime()
        let n = 500
        let unwound = Atomic<Int>(0)
        try rt.run {
            for i in 0..<n {
                go {
                    defer { unwound.add(1, ordering: .relaxed) }
                    _ = sleepDeep(depth: 4, seed: UInt64(i), parent: nil, parentSeed: 0, stack: currentStackRange()) {
                        _ = try? GreenThread.sleep(for: .seconds(3600))
                    }
                }
            }
        }
        try waitFor("\(n) compacted sleepers") { rt.stats.stacksCompacted == n }
        #expect(rt.stats.live == n)
        rt.shutdown()
        #expect(unwound.load(ordering: .relaxed) == n)
        #if DEBUG
        #expect(rt.core.fiberObjects.load(ordering: .relaxed) == 0)
        #endif
        let s = rt.stats
        #expect(s.live == 0)
        #expect(s.stacksMapped == 0)
        #expect(s.stacksCompacted == 0)
        #expect(s.stackCompactions == n)
        #expect(s.spawned == s.completed)
    }

    /// Runs in a child process: the switch to one madvise per stack is for
    /// the whole process.
    @Test("without process_madvise, one madvise per stack releases the pages too")
    func fallbackWithoutBatching() async {
        await #expect(processExitsWith: .success) {
            gt_stacks_discard_disable_batching()
            precondition(gt_stacks_discard_batched() == 0)
            let rt = compactingRuntime()
            defer { rt.shutdown() }
            let n = 100
            let (checks, pages) = try rt.run { () throws -> ([FrameCheck], [Int]) in
                let hs = (0..<n).map { i in
                    go { () -> FrameCheck in
                        sleepDeep(depth: 6, seed: UInt64(i), parent: nil, parentSeed: 0, stack: currentStackRange()) {
                            _ = try? GreenThread.sleep(for: .seconds(3600))
                        }
                    }
                }
                try waitFor("\(n) compacted stacks") { rt.stats.stacksCompacted == n }
                let pages = hs.map { residentPages($0.fiber.stack) }
                for h in hs { h.cancel() }
                return (try joinAll(hs), pages)
            }
            precondition(pages.allSatisfy { $0 == 0 }, "resident pages: \(pages.sorted().suffix(5))")
            precondition(checks.allSatisfy { $0.frames == 7 && $0.intact == 7 && $0.parentsOK == 7 }, "\(checks.prefix(3))")
        }
    }

    @Test("a plain sleeper's saved stack top is under a page")
    func plainSleeperSavesLittle() throws {
        let rt = compactingRuntime()
        defer { rt.shutdown() }
        let n = 100
        let bytes = try rt.run { () throws -> [Int] in
            let hs = (0..<n).map { _ in go { try GreenThread.sleep(for: .seconds(3600)) } }
            try waitFor("\(n) compacted stacks") { rt.stats.stacksCompacted == n }
            let bytes = hs.map { $0.fiber.compactedBytes }
            for h in hs { h.cancel() }
            for h in hs { #expect(throws: CancellationError.self) { try h.join() } }
            return bytes.sorted()
        }
        print("StackCompactionTests: a plain sleeper's saved top is \(bytes[n / 2]) bytes")
        // The context, the switch's saved registers and the frames of the
        // body, sleep and park: hundreds of bytes in release, more in debug.
        #if DEBUG
        let bound = 4 * 1024  // unoptimized frames: ~3.2 KB
        #else
        let bound = 2 * 1024  // ~800 bytes
        #endif
        #expect(bytes.allSatisfy { $0 > MemoryLayout<gt_context>.size && $0 < bound }, "\(bytes.suffix(3))")
    }

    @Test("short sleeps, few sleepers, a virtual clock or nil: no compaction")
    func compactionIsSelective() throws {
        let short = compactingRuntime(minimumSleep: .seconds(10))
        try short.run {
            let hs = (0..<50).map { _ in go { try GreenThread.sleep(for: .milliseconds(50)) } }
            try joinAll(hs)
        }
        #expect(short.stats.stackCompactions == 0)
        short.shutdown()

        let few = Runtime(configuration: .init(
            workers: 2, stackCompaction: .init(minimumSleep: .zero, minimumSleepers: 100_000)))
        try few.run {
            let hs = (0..<50).map { _ in go { try GreenThread.sleep(for: .milliseconds(50)) } }
            try joinAll(hs)
        }
        #expect(few.stats.stackCompactions == 0)
        few.shutdown()

        for config in [Runtime.Configuration(workers: 1, clock: .virtual,
                                             stackCompaction: .init(minimumSleep: .zero, minimumSleepers: 0)),
                       Runtime.Configuration(workers: 2, stackCompaction: nil)] {
            let rt = Runtime(configuration: config)
            try rt.run {
                let hs = (0..<50).map { _ in go { try GreenThread.sleep(for: .milliseconds(50)) } }
                try joinAll(hs)
            }
            #expect(rt.stats.stackCompactions == 0)
            rt.shutdown()
        }
    }

    @Test("a sleep inside a generator body leaves the thread's stack alone")
    func sleepOnACoroutineStack() throws {
        let rt = compactingRuntime(minimumSleep: .zero)
        defer { rt.shutdown() }
        let values = try rt.run { () throws -> [Int] in
            let hs = (0..<20).map { _ in
                go { () -> [Int] in
                    let gen = Generator<Int> { yield in
                        for i in 0..<3 {
                            try GreenThread.sleep(for: .milliseconds(30))
                            try yield(i)
                        }
                    }
                    return Array(gen)
                }
            }
            return try joinAll(hs).flatMap { $0 }
        }
        #expect(values == Array(repeating: [0, 1, 2], count: 20).flatMap { $0 })
        // Parked with sp on the generator's stack: never compacted.
        #expect(rt.stats.stackCompactions == 0)
    }

    @Test("the process's RSS drops when sleepers are compacted")
    func residentMemoryDrops() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let n = 20_000
            let page = Int(gt_page_size())
            func sleepersCost(_ compaction: Runtime.StackCompaction?) throws -> Int {
                let rt = Runtime(configuration: .init(workers: 2, stackCompaction: compaction))
                defer { rt.shutdown() }
                // Warm up: the runtime's own first allocations are not the sleepers'.
                _ = try rt.run { try joinAll((0..<100).map { _ in go { try GreenThread.sleep(for: .milliseconds(1)) } }) }
                let before = Int(gt_resident_bytes())
                let hs = (0..<n).map { _ in rt.spawn { try GreenThread.sleep(for: .seconds(3600)) } }
                try waitFor("sleepers parked") { hs.allSatisfy { $0.fiber.state == .parked } }
                if compaction != nil { try waitFor("sleepers compacted") { rt.stats.stacksCompacted == n } }
                let cost = (Int(gt_resident_bytes()) - before) / n
                for h in hs { h.cancel() }
                for h in hs { do { try h.join() } catch is CancellationError {} }
                return cost
            }
            // Compacted first, on a fresh heap: the plain run after it reuses
            // the heap blocks it freed, which only lowers the plain figure's
            // part above the page.
            let compacted = try sleepersCost(.init(minimumSleep: .zero, minimumSleepers: 0))
            let plain = try sleepersCost(nil)
            // Generous bounds: a plain sleeper holds its page; a compacted one
            // well under half of that (its copy is a few hundred bytes).
            // (3/4 of a page: the heap the compacted run freed may be handed
            // back to the kernel during the plain one, lowering its figure.)
            precondition(plain >= page * 3 / 4, "plain sleepers cost \(plain) B each")
            precondition(compacted * 2 < plain, "compacted sleepers cost \(compacted) B each, plain \(plain) B")
        }
        if let result, result.exitStatus != .exitCode(0) {
            Issue.record("child: \(String(decoding: result.standardErrorContent.suffix(400), as: UTF8.self))")
        }
    }
}
