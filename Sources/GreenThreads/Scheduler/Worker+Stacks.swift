import CContext
import Synchronization

// Worker+Stacks.swift: binding a stack when a green thread first runs, and
// taking it back when it ends.
//
// A spawned thread gets no stack: it gets one when it first *runs*
// (`contextToRun`, which every resume passes through). A thread that runs to
// completion without blocking returns its stack to the worker's pool, and
// the next new thread takes that same, cache-hot stack, so a burst of spawns
// touches one stack instead of one each. The same place copies a compacted
// stack back (StackCompaction.swift) and enters the thread in the registry,
// on the worker that usually also retires it, so spawn and exit never
// contend on one registry shard. Pool sizes, spilling, trimming and why
// stacks are pooled by home node are StackPool.swift's.

extension Worker {
    /// The context to switch into, binding a stack on the first run and
    /// copying a compacted one back (every resume passes here). nil when no
    /// stack could be had: the thread then ended unrun, its scheduler
    /// reference dropped, and `current` is nil (SpawnLimits.swift).
    @inline(__always)
    func contextToRun(_ fiber: Fiber) -> UnsafeMutablePointer<gt_context>? {
        if !fiber.hasStack {
            if !bindStack(fiber) { return nil }
        } else if fiber.compactedStack != nil {
            restoreStack(fiber)
        }
        return fiber.context
    }

    /// A thread's first run: its stack, and its entry in the registry.
    /// False if no stack could be mapped (the thread has ended unrun).
    @inline(never)
    private func bindStack(_ fiber: Fiber) -> Bool {
        let stack: gt_stack
        if let pooled = takeStack() ?? sharedStacks.take() {
            stack = pooled
        } else {
            do {
                stack = try core.mapStack(home: node, memoryNode: local.pointee.stacks.memoryNode)
            } catch {
                endUnrun(fiber, error)
                return false
            }
        }
        fiber.bindStack(stack)
        if !fiber.isRegistered {
            registry.insert(fiber, shard: index)
            fiber.isRegistered = true
        }
        if closing.load(ordering: .acquiring) { fiber.cancelled.store(true, ordering: .relaxed) }
        return true
    }

    func takeStack() -> gt_stack? {
        if let s = local.pointee.stacks.take() { return s }
        if sharedStacks.take(upTo: StackPool.refillBatch, into: &local.pointee.stacks) {
            return local.pointee.stacks.take()
        }
        return nil
    }

    func recycle(_ stack: gt_stack, wasCompacted: Bool = false) {
        // The local pool holds only this node's stacks: a thread that
        // migrated gives its stack back to the node its pages are on.
        if Int(stack.home) != node { return sendHome(stack) }
        if wasCompacted { return local.pointee.stacks.putClean(stack) }
        local.pointee.stacks.put(stack)
        if local.pointee.stacks.count > StackPool.spillAt {
            // Spilled dirty: a repeat of the burst finds its pages resident,
            // and the shared pool's own decay gives them back otherwise.
            local.pointee.stacks.spillHalf(into: sharedStacks)
        }
    }

    /// A stack freed away from its home node goes into that node's shared
    /// pool (StackPool.swift, "Home nodes"); its pages are already there.
    @inline(never)
    private func sendHome(_ stack: gt_stack) {
        core.stackPools[Int(stack.home)].put(stack)
    }
}
