import CContext
import Testing
@testable import GreenThreads

/// Routing of freed stacks by home node, on a simulated two-node topology:
/// the pools' logic, without real node memory behind it. The test thread
/// plays both workers, which no OS thread runs (see `DetachedCore`).
@Suite("Stack pools by home node")
struct StackHomeTests {
    final class TwoNodeCore: @unchecked Sendable {
        let runtime: Runtime
        let workers: [Worker]

        init() {
            runtime = Runtime(configuration: .init(
                workers: 2, numa: .simulated(nodes: 2), preemptionThreshold: nil, handoffThreshold: nil))
            runtime.shutdown()
            let core = runtime.core
            workers = (0..<2).map { Worker(index: $0, node: $0, core: core, seed: UInt64($0 + 1)) }
        }

        var core: RuntimeCore { runtime.core }

        func map(home: Int) -> gt_stack { try! core.mapStack(home: home, memoryNode: -1) }

        deinit {
            for w in workers { w.local.pointee.stacks.removeAll { gt_stack_free(&$0) } }
            for pool in core.stackPools { for var s in pool.removeAll() { gt_stack_free(&s) } }
        }
    }

    @Test("a simulated two-node runtime has a stack pool per node and binds no memory")
    func poolPerNode() {
        let c = TwoNodeCore()
        #expect(c.core.stackPools.count == 2)
        #expect(!c.core.bindsMemory)
        #expect(c.map(home: 1).home == 1)
        #expect(c.workers[0].sharedStacks === c.core.stackPools[0])
        #expect(c.workers[1].sharedStacks === c.core.stackPools[1])
    }

    @Test("a stack freed on its home node stays in the freeing worker's pool")
    func freedAtHomeStaysLocal() {
        let c = TwoNodeCore()
        let s = c.map(home: 0)
        c.workers[0].recycle(s)
        #expect(c.workers[0].local.pointee.stacks.count == 1)
        #expect(c.workers[0].takeStack()?.base == s.base)
        c.workers[0].recycle(s)
    }

    @Test("a stack freed on another node goes to its home node's pool, not the freeing worker's")
    func freedAwayGoesHome() {
        let c = TwoNodeCore()
        let s = c.map(home: 0)
        c.workers[1].recycle(s)
        #expect(c.workers[1].local.pointee.stacks.count == 0)
        #expect(c.core.stackPools[0].contains(base: s.base!))
        #expect(!c.core.stackPools[1].contains(base: s.base!))
        // Node 1's worker finds nothing to reuse; node 0's gets it back.
        #expect(c.workers[1].takeStack() == nil)
        let back = c.workers[0].takeStack()
        #expect(back?.base == s.base)
        #expect(back?.home == 0)
        c.workers[0].recycle(back!)
    }

    @Test("a spill goes to the worker's own node's pool")
    func spillStaysOnNode() {
        let c = TwoNodeCore()
        for _ in 0...StackPool.spillAt { c.workers[1].recycle(c.map(home: 1)) }
        let local = c.workers[1].local.pointee.stacks.count
        #expect(local <= StackPool.spillAt)
        #expect(c.core.stackPools[0].removeAll().isEmpty)
        var spilled = c.core.stackPools[1].removeAll()
        #expect(spilled.count + local == StackPool.spillAt + 1)
        #expect(spilled.allSatisfy { $0.home == 1 })
        for i in spilled.indices { gt_stack_free(&spilled[i]) }
    }

    @Test("green threads on a simulated two-node runtime bind stacks of their worker's node")
    func runningThreadsUseTheirNodesStacks() throws {
        let rt = Runtime(configuration: .init(workers: 2, numa: .simulated(nodes: 2)))
        defer { rt.shutdown() }
        let pairs = try rt.run { () throws -> [[Int]] in
            let hs = (0..<200).map { _ in
                go { () -> [Int] in
                    let w = Worker.current!
                    let home = Int(w.local.pointee.current!.takeUnretainedValue().stack.home)
                    GreenThread.yield()
                    return [home, w.node]
                }
            }
            return try joinAll(hs)
        }
        #expect(pairs.count == 200)
        for p in pairs { #expect(p[0] == p[1], "stack home \(p[0]) on a worker of node \(p[1])") }
    }
}
