import CContext
import Synchronization

// Worker+Steal.swift: whom a worker out of work steals from, in what order,
// and how much it takes (the hierarchical steal).
//
// ## The problem
//
// On a machine with several NUMA nodes, a green thread's stack, the objects
// it allocated and the cache lines of the queue it sat in live near the
// worker that made it. Moving it to a worker of another node turns every
// one of those accesses into a trip over the interconnect (one and a half to
// three times the latency of a local access, at a fraction of the
// bandwidth), for as long as it runs there. A thief also touches the
// victim's deque: the `top` CAS and the slot reads are cache-line
// transfers, cheap within a socket, dear across one. Yet an idle node while
// another has a backlog wastes whole CPUs. So work should stay on its node
// while the node has hands free for it, and cross only when a node runs
// dry, in small amounts, and nearest first.
//
// ## The order
//
// `Worker.victims` holds the thief's steal groups, nearest first
// (`Topology.stealOrder`): group 0 is its own node, then one group per
// other node in order of distance. The group's index is its distance rank.
//
//   1. Own node (`stealFromOwnNode`): every peer, from a random start (a
//      per-worker generator, so thieves do not move in step and do not all
//      hit the same victim; separate from the one a program's `select`
//      observes). Each victim: one thread to run and about half of the rest
//      into the thief's deque, each with its own `stealOne` CAS, retrying a
//      lost race (a race lost to a neighbour is cheap to retry).
//   2. Own node's injector, then the thief's own queues (`spinForWork`,
//      Worker+Idle.swift).
//   3. Other nodes (`stealFromOtherNodes`), only now that the node is dry:
//      its deques and its injector gave nothing. Group by group in distance
//      order, each only when due in this spin round (the back-off below): at
//      most `remoteProbes` victims of the group from a random start, one
//      `steal` attempt each, one thread each, and then that node's injector,
//      one thread.
//
// A victim's run-next slot is taken only when its deque is empty and only
// after `runNextGraceNanos` of spinning (Worker+RunQueue.swift, "The
// run-next slot"), wherever the victim is. A short deque waits for the end
// of the spin window ("Short queues").
//
// ## Why one thread across nodes
//
// Half of a remote deque is half of another node's working set moved over
// the interconnect at once, and the threads it drags along have children
// that will spawn on the thief's node: a fork-join tree then straddles the
// two nodes for the rest of the run. One thread keeps the cost per crossing
// bounded by one green thread's footprint, and it is enough to keep the
// thief busy: what it runs spawns onto its own deque, where its own node's
// peers steal half at a time as usual. A steady backlog elsewhere keeps
// being shared one thread per remote probe, at the pace of the thief's own
// work. A lost CAS on a remote deque is not retried either: it means
// another thief is at that deque, and a second attempt is one more transfer
// of a contended line across the interconnect; the next due round (or
// another victim) comes soon enough.
//
// ## Short queues
//
// While its spin window lasts (Worker+Idle.swift), a thief leaves alone a
// victim whose deque holds between one and `shortQueue` threads, and that
// victim's run-next slot with it; the last stretch of rounds before it
// parks takes everything, in the order above.
//
// Why: a worker that has run out of work is most often beside one whose
// running thread has just woken the partners of a hand-off, a producer
// it drained a channel for, a consumer it filled one for. Those partners
// sit in the run-next slot and, displaced from it, at the bottom of the
// deque. Stolen, each goes on to its own next step (a producer sends one
// value into a channel that is full again, and parks), and every message
// after that crosses between two cores. In a 4-producer select fan-in at
// two workers the idle worker stole about one producer per three
// messages, and the fan-in ran three to eight times slower than on one
// worker. A backlog worth sharing (a fork-join tree, a burst of spawns, a
// netpoll batch) outgrows four threads within microseconds and is stolen
// as before; a short queue behind a thread that keeps its worker is taken
// at the end of the window, tens of microseconds, not at sysmon's tick.
//
// Tried and rejected: letting a green thread that would park on a channel
// spin for its counterpart when another worker is running. It removes
// the park and steal churn (steals per 10^6 fan-in messages fell from
// ~350,000 to ~7,000), but producers and consumer then stream through
// the channel from two cores and pay the cache-line transfers per
// message: the fan-in got slower, not faster.
//
// ## The back-off for far victims
//
// A remote group of rank g is due in spin rounds that are multiples of
// 2^min(g, `maxBackoffShift`): the nearest other node every second round,
// the next every fourth, anything farther every eighth. Round 0 (the first
// look after running out of work) tries every node, so work that is only
// elsewhere is found at once; after that the far nodes are looked at less
// often than the near ones, so a steady trickle of work that could go to a
// near thief or a far one usually goes to the near one, and a spinning
// thief's probes do not keep pulling far cache lines. Each group gets at
// most `remoteProbes` probes per due round, so a round's cost does not grow
// with the size of the machine: on 4 sockets of 32 workers a full pass
// over one remote group would be 32 interconnect misses, several
// microseconds, longer than the pause between two spin rounds. The random
// start makes successive probes cover the whole group.
//
// Nothing is starved by the back-off: a spinner goes through every remote
// group at least once in 8 rounds, and a worker that stops spinning parks
// only after `hasVisibleWork` (every deque, slot and injector) says there
// is nothing anywhere (Worker.swift's header, "The spin/park handshake").
//
// ## Injectors
//
// The injectors follow the same rule (Worker+RunQueue.swift, "Overflow and
// the injector"): a worker drains its own node's injector in batches, and
// takes from another node's, one thread at a time and nearest first, only
// once its own node is dry (every peer's deque empty). Work from outside
// the runtime lands on the injector of the caller's node (Injector.swift).
//
// ## Rejected designs
//
// * A flat steal order over all workers (random victim among everyone):
//   with N nodes, a thief's first victim is remote (N-1)/N of the time, and
//   a fork-join tree spreads over every node within a few steals.
// * Stealing half across nodes: see above. The first round of a skewed
//   workload then moves half of the busy node's queue over the
//   interconnect, with the threads' stacks to follow.
// * Never crossing nodes unless a whole node sleeps (a strict partition):
//   one node's backlog then waits while another node's CPUs idle, as long
//   as any thread of the idle node is still running something.
// * A time-based back-off (a far victim only after so many µs of
//   spinning): it reads the clock per round, and it delays remote work that
//   is the only work there is by the full delay; rounds cost nothing to
//   count and round 0 looks everywhere.
// * Probing every remote victim per round: its cost grows with the machine
//   (see above) for no better chance of finding work than a random few.
//
// ## Statistics
//
// Each steal is counted by the thief as local or remote
// (`WorkerCounters.localSteals` / `remoteSteals`, plain stores by their
// owner); `Runtime.stats` sums them per node and in total. A take from an
// injector is not a steal. Debug builds also record, per worker, the
// victims probed and the first steals (`StealTrace`), so tests can check
// the order without timing.

extension Worker {
    /// Victims probed per remote group in a round where it is due.
    static let remoteProbes = 2
    /// The longest deque a spinning thief leaves to its owner until its
    /// spin window ends (the header, "Short queues").
    static let shortQueue = 4

    /// Whether this worker's deque holds between one and `shortQueue`
    /// threads (two relaxed loads; a thief's estimate).
    @inline(__always)
    var isShortQueue: Bool {
        let n = deque.count
        return n > 0 && n <= Self.shortQueue
    }

    /// A remote group of rank g is due every 2^min(g, this) spin rounds.
    static let maxBackoffShift = 3

    /// Whether the remote group of distance rank `rank` (≥ 1) is due in
    /// spin round `round`: round 0 looks at every node, then the nearest
    /// other node every 2nd round, the next every 4th, the rest every 8th.
    @inline(__always)
    static func remoteGroupIsDue(rank: Int, round: Int) -> Bool {
        round & ((1 << min(rank, maxBackoffShift)) &- 1) == 0
    }

    /// Steals from this worker's own node: every peer, from a random
    /// start; one to run and about half of the rest into the local deque.
    @inline(__always)
    func stealFromOwnNode(takeRunNext: Bool, leavingShortQueues: Bool = false) -> Unmanaged<Fiber>? {
        guard let group = victims.first else { return nil }
        let n = group.count
        if n <= 1 { return nil }  // only ourselves
        let start = local.pointee.stealRng.next(below: n)
        for k in 0..<n {
            var i = start &+ k
            if i >= n { i &-= n }
            let found = group[i]._withUnsafeGuaranteedRef { victim in
                victim === self ? nil : stealWithin(victim, takeRunNext: takeRunNext, leavingShortQueues: leavingShortQueues)
            }
            if let found { return found }
        }
        return nil
    }

    /// Steals across nodes, nearest first, from the groups due in spin
    /// round `round`: a few victims per group, one thread, then that
    /// node's injector. Call only once this worker's own node is dry.
    @inline(never)
    func stealFromOtherNodes(round: Int, takeRunNext: Bool, leavingShortQueues: Bool = false) -> Unmanaged<Fiber>? {
        let groups = victims
        for rank in 1..<groups.count where Self.remoteGroupIsDue(rank: rank, round: round) {
            let group = groups[rank]
            let n = group.count
            if n == 0 { continue }
            var i = local.pointee.stealRng.next(below: n)
            for _ in 0..<min(n, Self.remoteProbes) {
                if let f = group[i]._withUnsafeGuaranteedRef({ stealAcross($0, takeRunNext: takeRunNext, leavingShortQueues: leavingShortQueues) }) {
                    return f
                }
                i &+= 1
                if i == n { i = 0 }
            }
            let node = group[0]._withUnsafeGuaranteedRef { $0.node }
            if let f = injectors[node].popBatch(max: 1) { return f }
        }
        return nil
    }

    /// Steals from `victim`, within its node or across (one thread), as
    /// the thief's and the victim's nodes say. For callers that pick a
    /// victim by another rule (StalledPeers.swift).
    func steal(from victim: Worker, takeRunNext: Bool) -> Unmanaged<Fiber>? {
        victim.node == node
            ? stealWithin(victim, takeRunNext: takeRunNext)
            : stealAcross(victim, takeRunNext: takeRunNext)
    }

    /// A steal from a peer of this node: one to run and up to half of the
    /// rest into the local deque. `leavingShortQueues`: a deque of at most
    /// `shortQueue` threads is left to its owner (the header, "Short
    /// queues"), and so is its run-next slot.
    @inline(__always)
    private func stealWithin(_ victim: Worker, takeRunNext: Bool, leavingShortQueues: Bool = false) -> Unmanaged<Fiber>? {
        traceProbe(victim)
        if leavingShortQueues, victim.isShortQueue { return nil }
        guard let first = victim.deque.stealOne() else {
            return takeRunNext ? stealRunNext(victim, remote: false) : nil
        }
        Self.bump(counters.localSteals)
        traceSteal(victim, remote: false)
        var extra = victim.deque.count / 2
        while extra > 0, let bits = victim.deque.stealOne() {
            pushLocal(Self.fiber(bits))
            extra -= 1
        }
        return Self.fiber(first)
    }

    /// A steal from a worker of another node: one thread, one attempt (a
    /// lost race means another thief is at that deque; see the header).
    private func stealAcross(_ victim: Worker, takeRunNext: Bool, leavingShortQueues: Bool = false) -> Unmanaged<Fiber>? {
        traceProbe(victim)
        if leavingShortQueues, victim.isShortQueue { return nil }
        switch victim.deque.steal() {
        case .success(let bits):
            Self.bump(counters.remoteSteals)
            traceSteal(victim, remote: true)
            return Self.fiber(bits)
        case .retry:
            return nil
        case .empty:
            return takeRunNext ? stealRunNext(victim, remote: true) : nil
        }
    }

    /// An empty deque but an occupied run-next slot (after the grace
    /// period): take that, so a green thread is never stranded behind a
    /// busy owner.
    private func stealRunNext(_ victim: Worker, remote: Bool) -> Unmanaged<Fiber>? {
        guard victim.runNext.load(ordering: .relaxed) != 0 else { return nil }
        let bits = victim.runNext.exchange(0, ordering: .acquiring)
        guard bits != 0 else { return nil }
        if remote { Self.bump(counters.remoteSteals) } else { Self.bump(counters.localSteals) }
        traceSteal(victim, remote: remote)
        return Self.fiber(bits)
    }

    @inline(__always)
    private func traceProbe(_ victim: Worker) {
        #if DEBUG
        counters.stealTrace.probed(victim.index)
        #endif
    }

    @inline(__always)
    private func traceSteal(_ victim: Worker, remote: Bool) {
        #if DEBUG
        counters.stealTrace.stole(from: victim.index, remote: remote)
        #endif
    }
}

#if DEBUG
/// What one worker's steal path did, for tests (debug builds only): the
/// first `capacity` victims it probed, in order, and the first `capacity`
/// steals it made. Cleared by tests between phases.
final class StealTrace: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the arrays are guarded by `lock`;
    // the two flags are atomic.

    struct Steal: Equatable {
        let victim: Int
        let remote: Bool
    }

    static let capacity = 256

    private let lock = SpinLock()
    private var probes: [Int] = []
    private var steals: [Steal] = []
    /// Set once a log is full, so that a spinning worker stops taking the
    /// lock for it.
    private let probesFull = Atomic<Bool>(false)
    private let stealsFull = Atomic<Bool>(false)

    func probed(_ victim: Int) {
        if probesFull.load(ordering: .relaxed) { return }
        lock.withLock {
            probes.append(victim)
            if probes.count == Self.capacity { probesFull.store(true, ordering: .relaxed) }
        }
    }

    func stole(from victim: Int, remote: Bool) {
        if stealsFull.load(ordering: .relaxed) { return }
        lock.withLock {
            steals.append(Steal(victim: victim, remote: remote))
            if steals.count == Self.capacity { stealsFull.store(true, ordering: .relaxed) }
        }
    }

    var probedVictims: [Int] { lock.withLock { probes } }
    var firstSteals: [Steal] { lock.withLock { steals } }

    func clear() {
        lock.withLock {
            probes.removeAll()
            steals.removeAll()
            probesFull.store(false, ordering: .relaxed)
            stealsFull.store(false, ordering: .relaxed)
        }
    }
}
#endif
