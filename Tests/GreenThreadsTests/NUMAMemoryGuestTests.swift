import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// What the kernel says about this process's memory nodes. On a one-node
/// machine the suite asserts what holds there; the assertions about more
/// than one node run where the kernel reports them (scripts/numa-vm-test.sh
/// boots such a kernel) and show as skipped elsewhere.
enum KernelMemory {
    static let nodes = Int(gt_numa_memory_node_count())
    static var isMultiNode: Bool { nodes > 1 }

    static var cpuCount: Int {
        var cpus = [Int32](repeating: 0, count: 4096)
        return max(1, Int(gt_available_cpus(&cpus, Int32(cpus.count))))
    }

    /// The node of a page known to be resident. Automatic NUMA balancing
    /// unmaps pages now and then to sample their accesses, and until the
    /// next touch a kernel before 6.5 reports such a page to move_pages as
    /// absent (-ENOENT). A read makes it present again without moving it
    /// (balancing moves a page only after two faults from the same node).
    /// Not for pages that may be untouched: the read would allocate them.
    static func nodeOfResident(_ address: UnsafeRawPointer) -> Int32 {
        var node = gt_numa_node_of(address)
        for _ in 0..<3 where node == -ENOENT {
            keep(address.load(as: UInt8.self))
            node = gt_numa_node_of(address)
        }
        return node
    }

    @inline(never) @_optimize(none)
    private static func keep(_ byte: UInt8) {}
}

/// Where one green thread's stack is, seen from inside it, in its first run.
struct StackPlacement: Sendable {
    /// An address on the thread's stack (a local of this frame).
    var address: UInt
    var stackBase: UInt
    var stackEnd: UInt
    var home: Int
    /// The topology node of the worker running it.
    var workerNode: Int
    /// The kernel memory node of that worker's CPU (it is pinned).
    var cpuMemoryNode: Int32
    /// Where move_pages says the touched stack page is.
    var pageNode: Int32

    var addressIsOnStack: Bool { address >= stackBase && address < stackEnd }

    /// Call from a green thread; records before any switch, so the worker
    /// is the one that bound the stack.
    @inline(never)
    static func probe() -> StackPlacement {
        let worker = Worker.current!
        let stack = worker.local.pointee.current!.takeUnretainedValue().stack
        var marker = 0x5A
        return withUnsafeMutablePointer(to: &marker) { p in
            p.pointee &+= 1
            let base = UInt(bitPattern: stack.base)
            return StackPlacement(
                address: UInt(bitPattern: p), stackBase: base, stackEnd: base + UInt(stack.size),
                home: Int(stack.home), workerNode: worker.node,
                cpuMemoryNode: gt_numa_current_node(), pageNode: KernelMemory.nodeOfResident(p))
        }
    }
}

final class PlacementLog: Sendable {
    let entries = Mutex<[Int: StackPlacement]>([:])
}

@Suite(.serialized)
struct NUMAMemoryGuestTests {
    static func pinnedRuntime() -> Runtime {
        Runtime(configuration: .init(
            workers: KernelMemory.cpuCount, numa: .auto, pinWorkers: true,
            preemptionThreshold: nil, handoffThreshold: nil))
    }

    @Test("move_pages reports the node of a touched page, and none for an untouched one")
    func kernelReportsPageNodes() throws {
        let page = Int(gt_page_size())
        let m = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        try #require(m != MAP_FAILED)
        defer { munmap(m, 2 * page) }
        let bytes = m!.assumingMemoryBound(to: UInt8.self)
        bytes[0] = 1
        let node = KernelMemory.nodeOfResident(bytes)
        #expect(node >= 0 && Int(node) < max(KernelMemory.nodes, 1), "touched page on node \(node)")
        if !KernelMemory.isMultiNode { #expect(node == 0) }
        // Never touched: -ENOENT, or -EFAULT on older kernels.
        let untouched = gt_numa_node_of(bytes + page)
        #expect(untouched == -ENOENT || untouched == -EFAULT)
    }

    @Test("an explicit preference moves a touched page to that node")
    func preferenceMovesPages() throws {
        let page = Int(gt_page_size())
        let m = mmap(nil, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        try #require(m != MAP_FAILED)
        defer { munmap(m, page) }
        m!.storeBytes(of: 7, as: UInt8.self)
        let target = Int32(KernelMemory.nodes - 1)
        #expect(gt_numa_prefer(m, page, target, true) == 0)
        #expect(KernelMemory.nodeOfResident(m!) == target)
    }

    /// Every green thread's stack, touched in its first run, is on the
    /// memory node of the worker that ran it (on one node: node 0), and
    /// its home pool is that worker's node.
    @Test("stacks of green threads sit on their worker's node")
    func stacksSitOnTheirWorkersNode() throws {
        let rt = Self.pinnedRuntime()
        defer { rt.shutdown() }
        #expect(rt.core.bindsMemory == KernelMemory.isMultiNode)
        let placements = try rt.run { () throws -> [StackPlacement] in
            // Parked together, so each has a stack of its own and the
            // idle workers steal some before their first run.
            let gate = WaitGroup()
            gate.add(1)
            let hs = (0..<64).map { _ in
                go { () throws -> StackPlacement in
                    let p = StackPlacement.probe()
                    try gate.wait()
                    return p
                }
            }
            try waitUntilParked(hs)
            gate.done()
            return try joinAll(hs)
        }
        #expect(placements.count == 64)
        for p in placements {
            #expect(p.addressIsOnStack)
            #expect(p.home == p.workerNode)
            #expect(p.pageNode == p.cpuMemoryNode,
                    "stack page on node \(p.pageNode), its worker's CPU on node \(p.cpuMemoryNode)")
        }
        if KernelMemory.isMultiNode {
            #expect(Set(placements.map(\.workerNode)).count > 1, "first runs spread over the nodes")
        }
    }

    /// A thread that first ran on one node and finished on another gives
    /// its stack to its home node's pool, not to the finishing worker's.
    @Test("a stack freed on another node goes back to its own node's pool",
          .enabled(if: KernelMemory.isMultiNode, "the kernel reports one memory node"))
    func stackFreedRemotelyGoesHome() throws {
        let rt = Self.pinnedRuntime()
        defer { rt.shutdown() }
        let core = rt.core
        let outcome = try rt.run { () throws -> (crossed: Int, wentHome: Int, strayed: Int) in
            // Sleepers until their first runs span two nodes (the other
            // nodes' idle workers steal some).
            var sleepers: [(StackPlacement, Channel<Int>, JoinHandle<Int>)] = []
            for _ in 0..<20 where Set(sleepers.map(\.0.home)).count < 2 {
                let gate = WaitGroup()
                let placements = PlacementLog()
                var round: [(Channel<Int>, JoinHandle<Int>)] = []
                for i in 0..<32 {
                    let ch = Channel<Int>(capacity: 0)
                    gate.add(1)
                    round.append((ch, go { () throws -> Int in
                        let p = StackPlacement.probe()
                        placements.entries.withLock { $0[i] = p }
                        gate.done()
                        _ = try ch.receive()
                        return Worker.current!.node
                    }))
                }
                try gate.wait()
                let ps = placements.entries.withLock { $0 }
                for (i, r) in round.enumerated() { sleepers.append((ps[i]!, r.0, r.1)) }
            }
            // Woken by us, each runs next on our worker (ours when we
            // send: a wake may have moved us): the far ones finish away
            // from home. Every other thread is parked, so nothing takes a
            // stack from a pool meanwhile.
            var crossed = 0, wentHome = 0, strayed = 0
            var near: [(Channel<Int>, JoinHandle<Int>)] = []
            for (p, ch, h) in sleepers {
                guard p.home != Worker.current!.node else {
                    near.append((ch, h))
                    continue
                }
                try ch.send(1)
                let finishedOn = try h.join()
                guard finishedOn != p.home else { continue }
                crossed += 1
                // The stack is recycled just after the result is published.
                let base = UnsafeMutableRawPointer(bitPattern: p.stackBase)!
                let deadline = gt_now_ns() + 2_000_000_000
                while !core.stackPools[p.home].contains(base: base), gt_now_ns() < deadline { GreenThread.yield() }
                if core.stackPools[p.home].contains(base: base) { wentHome += 1 }
                for n in core.stackPools.indices where n != p.home && core.stackPools[n].contains(base: base) {
                    strayed += 1
                }
            }
            for (ch, h) in near {
                try ch.send(1)
                _ = try h.join()
            }
            return (crossed, wentHome, strayed)
        }
        #expect(outcome.crossed > 0, "no thread finished away from its home node")
        #expect(outcome.wentHome == outcome.crossed)
        #expect(outcome.strayed == 0)
    }

    /// Each pinned worker moved its deque's pages to its node once it
    /// started, though the runtime's constructor touched them first.
    @Test("each worker's deque sits on its worker's node",
          .enabled(if: KernelMemory.isMultiNode, "the kernel reports one memory node"))
    func dequesSitOnTheirWorkersNode() throws {
        let rt = Self.pinnedRuntime()
        defer { rt.shutdown() }
        let workers = Array(rt.core.workers.prefix(rt.core.baseWorkerCount))
        // Settled by each worker's thread at its start; the node is set
        // last. (A plain read racing that one write: a test's poll.)
        let deadline = gt_now_ns() + 5_000_000_000
        while workers.contains(where: { $0.local.pointee.stacks.memoryNode < 0 }), gt_now_ns() < deadline {
            usleep(1_000)
        }
        let nodes = Set(workers.map { $0.local.pointee.stacks.memoryNode })
        #expect(!nodes.contains(-1), "every pinned worker binds to a node")
        #expect(nodes.count > 1)
        for w in workers {
            let pageNode = w.deque.withSlotMemory { p, _ in KernelMemory.nodeOfResident(p) }
            #expect(pageNode == w.local.pointee.stacks.memoryNode, "worker \(w.index)'s deque on node \(pageNode)")
        }
    }
}
