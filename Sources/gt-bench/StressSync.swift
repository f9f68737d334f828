// The stress soak's synchronisation and cancellation workloads: a mutex
// counter, a semaphore's bound, a condition-variable queue, and green
// threads cancelled in every kind of wait. What each checks is in
// StressCommand.swift's header.
import GreenThreads
import Synchronization

/// A task-local the mutex workload binds per thread.
enum StressLocals {
    @TaskLocal static var owner: Int = -1
}

enum StressSync {
    /// T threads each add 1 to a plain counter N times under a GreenMutex,
    /// with a yield inside some critical sections; the lock taken by
    /// `lock`, `withLock` or a `tryLock` loop.
    static func mutexCounter(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let threads = d.size(2...16)
        let increments = d.size(50...1_000)
        let mutex = GreenMutex()
        let counter = StressBox(0)
        let holders = StressCounter()
        let what = "mutex counter, \(threads) threads x \(increments)"
        ctx.describe("mutex", what)
        let handles = (0..<threads).map { index in
            let seed = d.seed()
            return ctx.spawn { () throws -> Void in
                var rng = StressRandom(seed: seed)
                // Each thread's own task-local binding must survive its
                // parks and yields, whichever worker resumes it.
                try StressLocals.$owner.withValue(index) { () throws -> Void in
                for _ in 0..<increments {
                    switch rng.int(0...2) {
                    case 0: try mutex.lock()
                    case 1: while !mutex.tryLock() { GreenThread.yield() }
                    default: try mutex.lock()
                    }
                    let inside = holders.add(1)
                    let v = counter.value
                    if rng.chance(0.1) { GreenThread.yield() }
                    counter.value = v + 1
                    holders.add(-1)
                    mutex.unlock()
                    try require(inside == 1, "\(what): \(inside) threads inside the critical section at once")
                    try require(StressLocals.owner == index, "\(what): thread \(index) sees task-local \(StressLocals.owner)")
                    ctx.tick()
                }
                }
                try require(StressLocals.owner == -1, "\(what): a task-local binding outlived its scope")
            }
        }
        try joinAll(handles)
        try require(counter.value == threads * increments, "\(what): counter \(counter.value), expected \(threads * increments)")
        try require(mutex.tryLock(), "\(what): the mutex is still held after every thread finished")
        mutex.unlock()
    }

    /// T threads each take a permit of a k-permit semaphore N times
    /// (`acquire`, `acquire(timeout:)` retried, or `tryAcquire` + yield):
    /// never more than k inside, and k permits at the end.
    static func semaphoreBound(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let permits = d.size(1...4)
        let threads = d.size(2...16)
        let rounds = d.size(20...100)
        let sem = GreenSemaphore(value: permits)
        let inside = StressCounter()
        let what = "semaphore of \(permits), \(threads) threads x \(rounds)"
        ctx.describe("semaphore", what)
        let wg = WaitGroup()
        var handles: [JoinHandle<Void>] = []
        for _ in 0..<threads {
            let seed = d.seed()
            ctx.spawns.add(1)
            handles.append(wg.go { () throws -> Void in
                var rng = StressRandom(seed: seed)
                for _ in 0..<rounds {
                    switch rng.int(0...2) {
                    case 0: try sem.acquire()
                    case 1: while try !sem.acquire(timeout: rng.micros(10...300)) {}
                    default: while !sem.tryAcquire() { GreenThread.yield() }
                    }
                    let n = inside.add(1)
                    if rng.chance(0.3) { GreenThread.yield() }
                    if rng.chance(0.05) { try GreenThread.sleep(for: rng.micros(10...200)) }
                    inside.add(-1)
                    sem.release()
                    try require(n <= permits, "\(what): \(n) threads held a permit at once")
                    ctx.tick()
                }
            })
        }
        try wg.wait()
        try joinAll(handles)
        try require(sem.count == permits, "\(what): \(sem.count) permits at the end")
    }

    /// A bounded queue made of a GreenMutex and two GreenConditions: P
    /// producers put N items each, C consumers take until the producers
    /// are done and the queue is empty. Some waits are timed (and retried).
    static func conditionQueue(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let bound = d.size(1...8)
        let producers = d.size(1...6)
        let consumers = d.size(1...6)
        let perProducer = d.size(50...800)
        let mutex = GreenMutex()
        let notFull = GreenCondition()
        let notEmpty = GreenCondition()
        let queue = StressBox<[Int]>([])
        let producing = StressBox(producers)
        let what = "condition queue of \(bound), \(producers)x\(consumers), \(perProducer) each"
        ctx.describe("condition", what)

        let putters = (0..<producers).map { p in
            let seed = d.seed()
            return ctx.spawn { () throws -> Void in
                var rng = StressRandom(seed: seed)
                for seq in 0..<perProducer {
                    try mutex.lock()
                    defer { mutex.unlock() }
                    while queue.value.count >= bound {
                        if rng.chance(0.2) { _ = try notFull.wait(mutex, timeout: rng.micros(10...300)) } else { try notFull.wait(mutex) }
                    }
                    queue.value.append(p << 32 | seq)
                    notEmpty.signal()
                    ctx.tick()
                }
                try mutex.withLock {
                    producing.value -= 1
                    if producing.value == 0 { notEmpty.broadcast() }
                }
            }
        }
        let takers = (0..<consumers).map { _ in
            let seed = d.seed()
            return ctx.spawn { () throws -> [Int] in
                var rng = StressRandom(seed: seed)
                var got: [Int] = []
                while true {
                    try mutex.lock()
                    defer { mutex.unlock() }
                    while queue.value.isEmpty && producing.value > 0 {
                        if rng.chance(0.2) { _ = try notEmpty.wait(mutex, timeout: rng.micros(10...300)) } else { try notEmpty.wait(mutex) }
                    }
                    if queue.value.isEmpty { return got }
                    got.append(queue.value.removeFirst())
                    notFull.signal()
                    ctx.tick()
                }
            }
        }
        try joinAll(putters)
        let received = try joinAll(takers).flatMap { $0 }
        try require(received.count == producers * perProducer,
                    "\(what): \(received.count) items taken, \(producers * perProducer) put")
        try require(Set(received).count == received.count, "\(what): an item was taken twice")
        try require(received.allSatisfy { $0 >> 32 < producers && $0 & 0xFFFF_FFFF < perProducer },
                    "\(what): an item that was never put came out")
    }

    /// Green threads cancelled in every kind of wait (channel receive and
    /// send, select without timeout, mutex, semaphore, condition, join,
    /// sleep, a loop polling `isCancelled`), some cancelled before they
    /// even wait. Each must end with `CancellationError` (the polling
    /// loop: return early), and the wait must leave nothing behind:
    /// no receiver or sender still queued on the channels, the mutex and
    /// the semaphore not handed to a thread that left.
    static func cancellation(_ d: inout StressDraw, _ ctx: StressContext) throws {
        let victims = d.size(4...32)
        let receiveFrom = Channel<Int>(capacity: 0)
        let sendTo = Channel<Int>(capacity: 0)
        let held = GreenMutex()
        let empty = GreenSemaphore(value: 0)
        let condMutex = GreenMutex()
        let never = GreenCondition()
        let release = Channel<Int>(capacity: 0)
        let blocker = ctx.spawn { () -> Int in try release.receive() ?? -1 }
        try held.lock()
        let kinds = (0..<victims).map { _ in d.rng.int(0...8) }
        let what = "cancellation of \(victims) (kinds \(kinds))"
        ctx.describe("cancel", what)
        let handles = kinds.map { kind in
            ctx.spawn { () throws -> Bool in
                switch kind {
                case 0: _ = try receiveFrom.receive()
                case 1: try sendTo.send(1)
                case 2: try select { Case.receive(receiveFrom) { _ in }; Case.receive(release) { _ in } }
                case 3: try held.lock()
                case 4: try empty.acquire()
                case 5:
                    try condMutex.lock()
                    defer { condMutex.unlock() }
                    try never.wait(condMutex)
                case 6: _ = try blocker.join()
                case 7: try GreenThread.sleep(for: .seconds(30))
                default:
                    while !GreenThread.isCancelled { GreenThread.yield() }
                    return true
                }
                return false  // the wait returned as if it had succeeded
            }
        }
        let delay = d.rng.int(0...3)
        for _ in 0..<delay { GreenThread.yield() }
        if d.rng.chance(0.5) { try GreenThread.sleep(for: d.rng.micros(0...500)) }
        for h in handles { h.cancel() }
        for (i, h) in handles.enumerated() {
            do {
                let ok = try h.join()
                try require(ok, "\(what): victim \(i) (kind \(kinds[i])) returned from its wait as if it succeeded")
            } catch is CancellationError {
                try require(kinds[i] <= 7, "\(what): victim \(i) (kind \(kinds[i])) threw CancellationError")
            }
            ctx.tick()
        }
        try require(receiveFrom.tryReceive() == nil && sendTo.tryReceive() == nil,
                    "\(what): a cancelled sender's value is still offered")
        try require(!receiveFrom.trySend(7), "\(what): a cancelled receiver is still queued (it took a value)")
        held.unlock()
        try require(held.tryLock(), "\(what): the mutex went to a thread that had left")
        held.unlock()
        empty.release()
        try require(empty.tryAcquire(), "\(what): the semaphore's permit went to a thread that had left")
        try release.send(1)
        try require(try blocker.join() == 1, "\(what): the joined thread did not finish normally")
    }
}
