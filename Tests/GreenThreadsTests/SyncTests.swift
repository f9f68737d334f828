import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// Shared mutable state that only a lock under test protects.
private final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

@Suite("Sync", .serialized)
struct SyncTests {
    // MARK: GreenMutex

    @Test(arguments: [1, 2])
    func mutexKeepsACounterExactUnderSixteenWayContention(workers: Int) throws {
        let threads = 16, increments = 20_000
        let counter = try onRuntime(workers: workers) { () throws -> Int in
            let m = GreenMutex()
            let box = Box(0)
            let hs = (0..<threads).map { t in
                go { () throws in
                    for i in 0..<increments {
                        try m.withLock {
                            let v = box.value
                            // Now and then hold the lock across a park: the
                            // mutex has no owning OS thread to trip over.
                            if (i + t) % 1_000 == 0 { GreenThread.yield() }
                            box.value = v + 1
                        }
                    }
                }
            }
            _ = try joinAll(hs)
            return box.value
        }
        #expect(counter == threads * increments)
    }

    @Test func mutexWorksBetweenOSAndGreenThreads() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let m = GreenMutex()
        let box = Box(0)
        let hs = (0..<4).map { _ in
            rt.spawn { () throws in
                for _ in 0..<10_000 { try m.withLock { box.value += 1 } }
            }
        }
        for _ in 0..<10_000 {
            m.lockUncancellable()
            box.value += 1
            m.unlock()
        }
        _ = try joinAll(hs)
        #expect(try m.withLock { box.value } == 50_000)
    }

    @Test func tryLockAndUnlockFromAnotherThread() throws {
        let m = GreenMutex()
        #expect(m.tryLock())
        #expect(!m.tryLock())
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run { m.unlock() }  // unlocked by a green thread: allowed, as in Go
        #expect(m.tryLock())
        m.unlock()
    }

    @Test func cancellationWakesAParkedLocker() throws {
        let (threw, waiters, usable) = try onRuntime { () throws -> (Bool, Int, Bool) in
            let m = GreenMutex()
            try m.lock()
            let h = go { () -> Bool in
                do { try m.lock(); return false } catch is CancellationError { return true } catch { return false }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            h.cancel()
            let threw = try h.join()
            let waiters = m.waiterCount
            m.unlock()
            let usable = m.tryLock()
            if usable { m.unlock() }
            return (threw, waiters, usable)
        }
        #expect(threw)
        #expect(waiters == 0)
        #expect(usable)
    }

    @Test func starvationModeBoundsTheWait() throws {
        // One worker, and a greedy thread that yields while holding the lock
        // and re-locks right after unlocking: the waiter, woken by each
        // unlock, only runs once the greedy thread holds the lock again. In
        // normal mode it would lose every round until the greedy loop ends
        // (400 ms, thousands of rounds); starvation mode hands the lock over
        // once the waiter has waited 1 ms.
        let roundsWaited = try onRuntime(workers: 1) { () throws -> Int in
            let m = GreenMutex()
            let rounds = Atomic<Int>(0)
            let stop = Atomic<Bool>(false)
            let greedy = go { () throws in
                let end = gt_now_ns() + 400_000_000
                while gt_now_ns() < end && !stop.load(ordering: .relaxed) {
                    try m.lock()
                    let until = gt_now_ns() + 50_000  // hold it 50 µs
                    while gt_now_ns() < until {}
                    GreenThread.yield()
                    rounds.add(1, ordering: .relaxed)
                    m.unlock()
                }
            }
            try GreenThread.sleep(for: .milliseconds(2))
            let waiter = go { () throws -> Int in
                let before = rounds.load(ordering: .relaxed)
                try m.lock()
                let waited = rounds.load(ordering: .relaxed) - before
                m.unlock()
                stop.store(true, ordering: .relaxed)
                return waited
            }
            let waited = try waiter.join()
            try greedy.join()
            return waited
        }
        // Hand-off starts after 1 ms of waiting (about 20 rounds); 400
        // leaves room for a slow machine.
        #expect(roundsWaited < 400, "the waiter got the lock after \(roundsWaited) greedy rounds")
    }

    @Test func unlockingAnUnlockedMutexIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            GreenMutex().unlock()
        }
    }

    // MARK: GreenCondition

    @Test func conditionHandsItemsFromProducerToConsumers() throws {
        let got = try onRuntime { () throws -> [Int] in
            let m = GreenMutex()
            let nonEmpty = GreenCondition()
            let queue = Box<[Int]>([])
            let consumers = (0..<4).map { _ in
                go { () throws -> [Int] in
                    var mine: [Int] = []
                    while true {
                        try m.lock()
                        while queue.value.isEmpty { try nonEmpty.wait(m) }
                        let v = queue.value.removeFirst()
                        m.unlock()
                        if v < 0 { return mine }
                        mine.append(v)
                    }
                }
            }
            for i in 0..<2_000 {
                try m.withLock { queue.value.append(i) }
                nonEmpty.signal()
                if i % 100 == 0 { GreenThread.yield() }
            }
            try m.withLock { queue.value.append(contentsOf: [-1, -1, -1, -1]) }
            nonEmpty.broadcast()
            return try joinAll(consumers).flatMap { $0 }.sorted()
        }
        #expect(got == Array(0..<2_000))
    }

    @Test func broadcastWakesEveryWaiter() throws {
        let (woken, waitersLeft) = try onRuntime { () throws -> (Int, Int) in
            let m = GreenMutex()
            let cond = GreenCondition()
            let go_ = Box(false)
            let woken = Atomic<Int>(0)
            let hs = (0..<5).map { _ in
                go { () throws in
                    try m.lock()
                    while !go_.value { try cond.wait(m) }
                    m.unlock()
                    woken.add(1, ordering: .relaxed)
                }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            #expect(cond.waiterCount == 5)
            try m.withLock { go_.value = true }
            cond.broadcast()
            _ = try joinAll(hs)
            return (woken.load(ordering: .relaxed), cond.waiterCount)
        }
        #expect(woken == 5)
        #expect(waitersLeft == 0)
    }

    @Test func conditionWaitTimesOutAndIsCancellableWithTheMutexHeld() throws {
        let (timedOut, cancelledHeld, waiters) = try onRuntime { () throws -> (Bool, Bool, Int) in
            let m = GreenMutex()
            let cond = GreenCondition()
            try m.lock()
            let signalled = try cond.wait(m, timeout: .milliseconds(10))
            m.unlock()
            let h = go { () -> Bool in
                m.lockUncancellable()
                defer { m.unlock() }
                do { try cond.wait(m); return false } catch {
                    // Thrown with the mutex held again: another locker must fail.
                    return !m.tryLock()
                }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            h.cancel()
            return (!signalled, try h.join(), cond.waiterCount)
        }
        #expect(timedOut)
        #expect(cancelledHeld)
        #expect(waiters == 0)
    }

    // MARK: GreenSemaphore

    @Test func semaphoreBoundsConcurrency() throws {
        let (maxInside, count) = try onRuntime { () throws -> (Int, Int) in
            let sem = GreenSemaphore(value: 3)
            let inside = Atomic<Int>(0)
            let maxInside = Atomic<Int>(0)
            let hs = (0..<20).map { _ in
                go { () throws in
                    for _ in 0..<20 {
                        try sem.acquire()
                        let now = inside.add(1, ordering: .relaxed).newValue
                        maxInside.max(now, ordering: .relaxed)
                        GreenThread.yield()
                        inside.subtract(1, ordering: .relaxed)
                        sem.release()
                    }
                }
            }
            _ = try joinAll(hs)
            return (maxInside.load(ordering: .relaxed), sem.count)
        }
        #expect(maxInside == 3)
        #expect(count == 3)
    }

    @Test func semaphoreTryTimeoutAndCancel() throws {
        let (tries, timedOut, cancelled, waiters) = try onRuntime { () throws -> ([Bool], Bool, Bool, Int) in
            let sem = GreenSemaphore(value: 1)
            let tries = [sem.tryAcquire(), sem.tryAcquire()]
            let timedOut = try !sem.acquire(timeout: .milliseconds(5))
            let h = go { () -> Bool in
                do { try sem.acquire(); return false } catch is CancellationError { return true } catch { return false }
            }
            try GreenThread.sleep(for: .milliseconds(10))
            h.cancel()
            let cancelled = try h.join()
            sem.release()
            return (tries, timedOut, cancelled, sem.waiterCount)
        }
        #expect(tries == [true, false])
        #expect(timedOut)
        #expect(cancelled)
        #expect(waiters == 0)
    }

    // MARK: WaitGroup

    @Test func waitGroupWaitsForEveryone() throws {
        let (finished, count) = try onRuntime { () throws -> (Int, Int) in
            let wg = WaitGroup()
            let finished = Atomic<Int>(0)
            for i in 0..<100 {
                wg.add(1)
                go {
                    defer { wg.done() }
                    try GreenThread.sleep(for: .microseconds(100 * (i % 5)))
                    finished.add(1, ordering: .relaxed)
                }
            }
            try wg.wait()
            try wg.wait()  // zero: returns at once
            return (finished.load(ordering: .relaxed), wg.count)
        }
        #expect(finished == 100)
        #expect(count == 0)
    }

    @Test func waitGroupFromAnOSThreadAndCancellation() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let wg = WaitGroup()
        let done = Atomic<Int>(0)
        wg.add(10)
        for _ in 0..<10 {
            rt.spawn {
                try GreenThread.sleep(for: .milliseconds(2))
                done.add(1, ordering: .relaxed)
                wg.done()
            }
        }
        try wg.wait()  // blocks this OS thread
        #expect(done.load(ordering: .relaxed) == 10)

        let never = WaitGroup()
        never.add(1)
        let h = rt.spawn { () -> Bool in
            do { try never.wait(); return false } catch is CancellationError { return true } catch { return false }
        }
        try GreenThread.sleep(for: .milliseconds(10))
        h.cancel()
        #expect(try h.join())
        never.done()
    }

    @Test func negativeWaitGroupCounterIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            WaitGroup().done()
        }
    }

    // MARK: Once

    @Test func onceRunsTheBodyOnceForEveryone() throws {
        let (runs, sawEffect) = try onRuntime { () throws -> (Int, Bool) in
            let once = Once()
            let runs = Atomic<Int>(0)
            let value = Box(0)
            let hs = (0..<50).map { _ in
                go { () -> Bool in
                    once.run {
                        _ = try? GreenThread.sleep(for: .milliseconds(5))  // others arrive meanwhile
                        value.value = 42
                        runs.add(1, ordering: .relaxed)
                    }
                    return value.value == 42
                }
            }
            let seen = try joinAll(hs)
            return (runs.load(ordering: .relaxed), seen.allSatisfy { $0 })
        }
        #expect(runs == 1)
        #expect(sawEffect)
    }

    @Test func onceRetriesAfterAThrowingBody() throws {
        struct Fail: Error {}
        let once = Once()
        #expect(throws: Fail.self) { try once.run { throw Fail() } }
        #expect(!once.isDone)
        var n = 0
        once.run { n += 1 }
        once.run { n += 1 }
        #expect(n == 1)
        #expect(once.isDone)
    }
}
