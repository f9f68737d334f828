import CContext

// Worker+Memory.swift: putting a worker's own memory on its node.
//
// The kernel places a page on the node of the CPU that first touches it.
// A runtime is built on the thread that calls `Runtime(...)`, so everything
// allocated in `Worker.init` was first touched there, on that thread's
// node, whatever node the worker later runs on. Once the worker's thread
// is pinned, it fixes what it can:
//
// * its stack pool's and fiber cache's buffers, still empty, are allocated
//   again from the worker's own thread (first touch);
// * the deque's slots, which thieves may read from the moment the worker
//   exists and so cannot be reallocated, are migrated (mbind with
//   MPOL_MF_MOVE on the pages wholly inside them);
// * the timer heap reserves its first entries from here.
//
// What grows later grows on the worker's thread and is local by first
// touch. New stacks are bound to the node by policy (StackPool.swift).
// A worker that is not pinned to one CPU, a simulated topology, and a
// machine or cpuset with one memory node do none of this: the kernel would
// have nothing to honour, or nowhere else to put the pages.

extension Worker {
    /// Runs once on the worker's thread, after pinning.
    func settleMemoryOnNode() {
        guard core.bindsMemory else { return }
        let memoryNode = gt_numa_pinned_node()
        guard memoryNode >= 0 else { return }
        deque.withSlotMemory { _ = gt_numa_prefer($0, $1, memoryNode, true) }
        timers.reserveOnCaller()
        local.pointee.fibers.reallocateBuffer()
        // Last: a nonnegative `memoryNode` says the worker has settled.
        local.pointee.stacks.settle(onMemoryNode: memoryNode)
    }
}
