import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// A runtime over a simulated NUMA topology whose worker threads have
/// stopped: its workers keep their steal groups and queues, and the test
/// thread plays each of them in turn, so what a steal finds is decided by
/// what the test queued and by nothing else.
private final class StoppedNUMACore: @unchecked Sendable {
    let runtime: Runtime
    private var made: [Unmanaged<Fiber>] = []

    convenience init(workers: Int, nodes: Int) {
        self.init(workers: workers, numa: .simulated(nodes: nodes))
    }

    init(workers: Int, numa: Runtime.NUMAMode) {
        runtime = Runtime(configuration: .init(
            workers: workers, numa: numa,
            preemptionThreshold: nil, handoffThreshold: nil))
        runtime.shutdown()
    }

    deinit {
        for w in runtime.core.workers {
            while w.deque.pop() != nil {}
            _ = w.runNext.exchange(0, ordering: .relaxed)
        }
        for node in 0..<runtime.core.topology.nodeCount {
            while runtime.core.injector(node).pop() != nil {}
        }
        for f in made { f.release() }
    }

    var core: RuntimeCore { runtime.core }
    func worker(_ i: Int) -> Worker { core.workers[i] }

    /// A fiber that never runs (the scheduler's +1 is this object's).
    func fiber() -> Unmanaged<Fiber> {
        let f = Unmanaged<Fiber>.passRetained(Fiber(core: core, anchor: CoreAnchor(core: core)))
        made.append(f)
        return f
    }

    /// Queues `count` fresh fibers on worker `i`'s deque.
    @discardableResult
    func queue(_ count: Int, on i: Int) -> [UInt] {
        (0..<count).map { _ in
            let f = fiber()
            #expect(worker(i).deque.push(f.bits))
            return f.bits
        }
    }

    /// The nodes of worker `w`'s steal groups, nearest first.
    func groupNodes(of w: Int) -> [Int] {
        core.topology.stealOrder(fromWorker: w).map { core.topology.nodeOfWorker[$0[0]] }
    }
}

@Suite("Hierarchical stealing")
struct HierarchicalStealTests {
    // MARK: The order and the amounts, on stopped workers

    @Test func remoteGroupsAreDueLessOftenTheFartherTheyAre() {
        // Round 0 looks everywhere; then rank 1 every 2nd round, rank 2
        // every 4th, rank 3 and beyond every 8th.
        for rank in 1...5 {
            let due = (0..<32).filter { Worker.remoteGroupIsDue(rank: rank, round: $0) }
            let period = 1 << min(rank, Worker.maxBackoffShift)
            #expect(due == Array(stride(from: 0, to: 32, by: period)), "rank \(rank)")
        }
    }

    @Test func aThiefTakesFromTheNearestNodeThatHasWork() throws {
        let s = StoppedNUMACore(workers: 4, nodes: 4)
        let order = s.core.topology.stealOrder(fromWorker: 0)
        #expect(order.count == 4)
        #expect(order[0] == [0])
        let (near, middle, far) = (order[1][0], order[2][0], order[3][0])
        let thief = s.worker(0)
        let inMiddle = s.queue(1, on: middle)
        let inFar = s.queue(1, on: far)

        // The own node (only the thief) holds nothing.
        #expect(thief.stealFromOwnNode(takeRunNext: true) == nil)
        #if DEBUG
        thief.counters.stealTrace.clear()
        #endif
        // Round 0: the nearest group first (empty), then the next one.
        #expect(thief.stealFromOtherNodes(round: 0, takeRunNext: false)?.bits == inMiddle[0])
        #if DEBUG
        #expect(thief.counters.stealTrace.probedVictims == [near, middle])
        #expect(thief.counters.stealTrace.firstSteals == [.init(victim: middle, remote: true)])
        #endif
        #expect(thief.stealFromOtherNodes(round: 0, takeRunNext: false)?.bits == inFar[0])
        #if DEBUG
        #expect(thief.counters.stealTrace.probedVictims == [near, middle, near, middle, far])
        #endif
        #expect(thief.counters.remoteSteals.load(ordering: .relaxed) == 2)
        #expect(thief.counters.localSteals.load(ordering: .relaxed) == 0)
        let stats = s.runtime.stats
        #expect(stats.remoteSteals == 2 && stats.localSteals == 0 && stats.steals == 2)
        #expect(stats.stealsByNode.map(\.remoteSteals) == [2, 0, 0, 0])
    }

    @Test func withADistanceMatrixTheNearerNodeIsRobbedFirst() throws {
        // Nodes 0 and 2 are 16 apart, every other pair 32: worker 0 (node
        // 0) must try node 2 before node 1, although node 1 comes first
        // by number, and the farther node waits for its rounds.
        let s = StoppedNUMACore(workers: 4, numa: .simulated(distances: [
            [10, 32, 16, 32], [32, 10, 32, 16], [16, 32, 10, 32], [32, 16, 32, 10],
        ]))
        #expect(s.groupNodes(of: 0) == [0, 2, 1, 3])
        let thief = s.worker(0)
        let onNode1 = s.queue(1, on: 1)
        let onNode2 = s.queue(1, on: 2)
        #expect(thief.stealFromOtherNodes(round: 0, takeRunNext: false)?.bits == onNode2[0])
        // Node 1 is rank 2: due every 4th round only.
        for round in 1...3 {
            #expect(thief.stealFromOtherNodes(round: round, takeRunNext: false) == nil, "round \(round)")
        }
        #expect(thief.stealFromOtherNodes(round: 4, takeRunNext: false)?.bits == onNode1[0])
        #expect(s.runtime.stats.remoteSteals == 2)
    }

    @Test func aSpinningThiefEmptiesItsOwnNodeBeforeCrossing() {
        let s = StoppedNUMACore(workers: 4, nodes: 2)
        let thief = s.worker(0)
        let remote = s.queue(2, on: 2)
        let peer = s.queue(1, on: 1)
        // Work on both nodes: the peer's first, although round 0 would
        // look at the other node too.
        #expect(thief.spinForWork()?.bits == peer[0])
        #expect(s.runtime.stats.localSteals == 1 && s.runtime.stats.remoteSteals == 0)
        // The node is dry: one thread from the other node, not half.
        #expect(thief.spinForWork()?.bits == remote[0])
        #expect(thief.deque.count == 0)
        #expect(s.worker(2).deque.count == 1)
        let stats = s.runtime.stats
        #expect(stats.localSteals == 1 && stats.remoteSteals == 1 && stats.steals == 2)
    }

    @Test func aFarNodeWaitsForItsRoundAndANearOneDoesNot() {
        let s = StoppedNUMACore(workers: 4, nodes: 4)
        let order = s.core.topology.stealOrder(fromWorker: 0)
        let thief = s.worker(0)
        for rank in 1...3 {
            let bits = s.queue(1, on: order[rank][0])
            let period = 1 << min(rank, Worker.maxBackoffShift)
            for round in 1..<period {
                #expect(thief.stealFromOtherNodes(round: round, takeRunNext: true) == nil, "rank \(rank), round \(round)")
            }
            #expect(thief.stealFromOtherNodes(round: period, takeRunNext: true)?.bits == bits[0], "rank \(rank)")
        }
    }

    @Test func withinANodeAThiefTakesHalfAndAcrossNodesOne() {
        let s = StoppedNUMACore(workers: 4, nodes: 2)
        #expect(s.core.topology.nodeOfWorker == [0, 0, 1, 1])
        let queued = s.queue(10, on: 0)

        // Worker 2 is on the other node: one thread, the oldest.
        #expect(s.worker(2).steal(from: s.worker(0), takeRunNext: false)?.bits == queued[0])
        #expect(s.worker(2).deque.count == 0)
        #expect(s.worker(0).deque.count == 9)

        // Worker 1 shares worker 0's node: one to run, half of the rest.
        #expect(s.worker(1).stealFromOwnNode(takeRunNext: false)?.bits == queued[1])
        #expect(s.worker(1).deque.count == 4)
        #expect(s.worker(0).deque.count == 4)

        let stats = s.runtime.stats
        #expect(stats.localSteals == 1)
        #expect(stats.remoteSteals == 1)
        #expect(stats.steals == stats.localSteals + stats.remoteSteals)
        #expect(stats.stealsByNode == [
            .init(node: 0, localSteals: 1, remoteSteals: 0),
            .init(node: 1, localSteals: 0, remoteSteals: 1),
        ])
    }

    /// While its spin window lasts, a thief leaves a deque of at most
    /// `shortQueue` threads, and that worker's run-next slot, to the owner
    /// (the partners of a hand-off it is about to run); a longer deque is
    /// stolen from as before, and at the window's end nothing is left.
    @Test func aShortQueueIsLeftToItsOwnerUntilTheSpinWindowEnds() {
        let s = StoppedNUMACore(workers: 4, nodes: 2)
        let thief = s.worker(0)
        let short = s.queue(Worker.shortQueue, on: 1)
        let f = s.fiber()
        s.worker(1).runNext.store(f.bits, ordering: .relaxed)
        let remote = s.queue(1, on: 2)
        #expect(thief.stealFromOwnNode(takeRunNext: true, leavingShortQueues: true) == nil)
        #expect(thief.stealFromOtherNodes(round: 0, takeRunNext: true, leavingShortQueues: true) == nil)
        #expect(s.worker(1).deque.count == Worker.shortQueue)
        #expect(s.worker(1).runNext.load(ordering: .relaxed) == f.bits)
        #expect(s.runtime.stats.steals == 0)

        // One more makes it a backlog: one to run and half of the rest.
        s.queue(1, on: 1)
        #expect(thief.stealFromOwnNode(takeRunNext: true, leavingShortQueues: true)?.bits == short[0])
        #expect(thief.deque.count == Worker.shortQueue / 2)
        #expect(s.worker(1).runNext.load(ordering: .relaxed) == f.bits)

        // The spin's last stretch takes short queues too, own node first.
        while thief.deque.pop() != nil {}
        while s.worker(1).deque.pop() != nil {}
        let last = s.queue(1, on: 1)
        #expect(thief.spinForWork()?.bits == last[0])
        _ = s.worker(1).runNext.exchange(0, ordering: .relaxed)
        #expect(thief.spinForWork()?.bits == remote[0])
    }

    @Test func aRemoteVictimsRunNextSlotIsTakenOnlyAfterTheGracePeriod() {
        let s = StoppedNUMACore(workers: 2, nodes: 2)
        let f = s.fiber()
        s.worker(1).runNext.store(f.bits, ordering: .relaxed)
        #expect(s.worker(0).stealFromOtherNodes(round: 0, takeRunNext: false) == nil)
        #expect(s.worker(0).stealFromOtherNodes(round: 0, takeRunNext: true)?.bits == f.bits)
        #expect(s.worker(1).runNext.load(ordering: .relaxed) == 0)
        #expect(s.runtime.stats.remoteSteals == 1)
    }

    @Test func anotherNodesInjectorWaitsUntilThisNodeIsDry() {
        let s = StoppedNUMACore(workers: 4, nodes: 2)
        let w0 = s.worker(0)
        let remote = (0..<3).map { _ in s.fiber() }
        for f in remote { s.core.injector(1).push(f) }
        let peerWork = s.queue(1, on: 1)

        // Worker 1, on worker 0's node, has work: that is nearer.
        #expect(w0.takeInjected() == nil)
        #expect(s.worker(1).deque.pop() == peerWork[0])

        // The home injector before the other node's.
        let home = s.fiber()
        s.core.injector(0).push(home)
        #expect(w0.takeInjected()?.bits == home.bits)

        // The node is dry now: one thread from the other node, not a batch.
        #expect(w0.takeInjected()?.bits == remote[0].bits)
        #expect(w0.deque.count == 0)
        #expect(!s.core.injector(1).isEmpty)
        // Injector takes are not steals.
        #expect(s.runtime.stats.steals == 0)
    }

    @Test func outsideSpawnsGoToTheNodeOfTheCallersCPU() {
        let s = StoppedNUMACore(workers: 4, nodes: 2)
        let topology = s.core.topology
        #expect(RuntimeCore.node(ofCPU: -1, in: topology) == nil)
        #expect(RuntimeCore.node(ofCPU: 1 << 20, in: topology) == nil)
        for w in 0..<4 {
            guard let cpu = topology.cpu(ofWorker: w) else { continue }
            // The first worker placed on that CPU names its node.
            let first = (0..<4).first { topology.cpu(ofWorker: $0) == cpu }!
            #expect(RuntimeCore.node(ofCPU: cpu, in: topology) == topology.nodeOfWorker[first])
        }
        // Whatever the CPU, the node is one of the runtime's.
        for sequence in 0..<8 as Range<UInt64> {
            #expect((0..<2).contains(s.core.externalNode(sequence: sequence)))
        }
    }

    // MARK: Live runtimes under skew

    /// All work spawned by one green thread that never parks (so it wakes
    /// nothing and its worker steals nothing): the tasks are only ever in
    /// its deque and in the deques of its own node's thieves, which take
    /// half at a time. Returns the producer's node.
    private static func skewRound(_ rt: Runtime, tasks: Int, ran: TestLog<Int>) throws -> Int {
        let done = Atomic<Int>(0)
        return try rt.run { () -> Int in
            let node = Worker.current!.node
            for i in 0..<tasks {
                go {
                    _ = spin(UInt64(i), iterations: 5_000)
                    ran.append(i)
                    done.add(1, ordering: .releasing)
                }
            }
            while done.load(ordering: .acquiring) < tasks { gt_cpu_relax() }
            return node
        }
    }

    /// The 2×2 skew: every task runs once; the producer's node steals only
    /// locally (its peer finds the producer's deque first, and nothing of
    /// the other node is ever worth taking); the other node steals only
    /// remotely (its workers' deques stay empty, one thread per steal).
    private static func twoByTwoSkew(rounds: Int, tasks: Int) throws {
        let rt = Runtime(configuration: .init(workers: 4, numa: .simulated(nodes: 2), handoffThreshold: nil))
        defer { rt.shutdown() }
        var round = 0
        repeat {
            #if DEBUG
            for w in rt.core.workers { w.counters.stealTrace.clear() }
            #endif
            let before = rt.stats
            let ran = TestLog<Int>()
            let producerNode = try skewRound(rt, tasks: tasks, ran: ran)
            #expect(ran.values.sorted() == Array(0..<tasks), "every task exactly once")
            let after = rt.stats
            let other = 1 - producerNode
            #expect(after.stealsByNode[producerNode].remoteSteals == before.stealsByNode[producerNode].remoteSteals,
                    "the producer's node stole across nodes")
            #expect(after.stealsByNode[other].localSteals == before.stealsByNode[other].localSteals,
                    "the idle node stole from its own empty deques")
            #if DEBUG
            for w in rt.core.workers where w.node == producerNode {
                #expect(w.counters.stealTrace.firstSteals.allSatisfy { !$0.remote })
            }
            #endif
            round += 1
        } while round < rounds || (rt.stats.localSteals == 0 && round < 50)
        let s = rt.stats
        #expect(s.localSteals > 0, "no local steal in \(round) rounds of skewed work")
        #expect(s.steals == s.localSteals + s.remoteSteals)
        #expect(s.stealsByNode.map(\.localSteals).reduce(0, +) == s.localSteals)
        #expect(s.stealsByNode.map(\.remoteSteals).reduce(0, +) == s.remoteSteals)
    }

    @Test func underSkewOnTwoByTwoLocalStealsComeFirst() throws {
        try Self.twoByTwoSkew(rounds: 3, tasks: 400)
    }

    @Test func underSkewOnFourNodesEveryStealCrossesNodes() throws {
        // One worker per node: no peer on the node, so every steal is
        // remote, one thread each.
        let rt = Runtime(configuration: .init(workers: 4, numa: .simulated(nodes: 4), handoffThreshold: nil))
        defer { rt.shutdown() }
        var round = 0
        repeat {
            let ran = TestLog<Int>()
            _ = try Self.skewRound(rt, tasks: 400, ran: ran)
            #expect(ran.values.sorted() == Array(0..<400), "every task exactly once")
            round += 1
        } while rt.stats.remoteSteals == 0 && round < 50
        let s = rt.stats
        #expect(s.remoteSteals > 0, "no steal in \(round) rounds of skewed work")
        #expect(s.localSteals == 0)
        #expect(s.steals == s.remoteSteals)
        #expect(s.stealsByNode.count == 4)
        #expect(s.stealsByNode.allSatisfy { $0.localSteals == 0 })
    }

    @Test func outsideSpawnsRunOnceOnEveryNodeCount() throws {
        for nodes in [1, 2, 4] {
            let rt = Runtime(configuration: .init(workers: 4, numa: .simulated(nodes: nodes)))
            defer { rt.shutdown() }
            let hs = (0..<200).map { i in rt.spawn { i } }
            #expect(try hs.map { try $0.join() } == Array(0..<200))
        }
    }

    @Test func skewBesideTwoCPUHogsKeepsEveryInvariant() throws {
        let stop = Atomic<Bool>(false)
        let hogs = (0..<2).map { _ in
            startThread {
                var x: UInt64 = 1
                while !stop.load(ordering: .relaxed) { x = spin(x, iterations: 1_000) }
            }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            hogs.forEach { joinThread($0) }
        }
        try Self.twoByTwoSkew(rounds: 20, tasks: 300)
    }

    /// A short queue is left alone only for a spin window: a thread queued
    /// behind a green thread that keeps its worker for a long time is run
    /// by the idle worker meanwhile (no preemption or hand-off here to
    /// rescue it).
    @Test func aThreadBehindABusyOneIsStolenAfterTheWindow() throws {
        let rt = Runtime(configuration: .init(workers: 2, preemptionThreshold: nil, handoffThreshold: nil))
        defer { rt.shutdown() }
        let ranWhileBusy = try rt.run { () throws -> Bool in
            let busyDone = Atomic<Bool>(false)
            let queuedRan = Atomic<Bool>(false)
            let busy = go {
                // Spawned onto this worker's deque, behind the busy loop.
                let queued = go { queuedRan.store(!busyDone.load(ordering: .acquiring), ordering: .releasing) }
                let end = gt_now_ns() + 2_000_000_000
                while !queuedRan.load(ordering: .acquiring), gt_now_ns() < end {}
                busyDone.store(true, ordering: .releasing)
                try queued.join()
            }
            try busy.join()
            return queuedRan.load(ordering: .acquiring)
        }
        #expect(ranWhileBusy, "the queued thread waited for the busy one to end")
    }
}
