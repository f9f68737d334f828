// WaiterList.swift: the intrusive FIFO that channels and the Sync primitives
// keep their parked waiters in (see Waiter.swift for who owns a waiter when).

/// An intrusive doubly linked FIFO of waiters: O(1) append, pop and
/// removal from the middle (a cancelled waiter, a losing select case).
///
/// Not thread-safe: every use is under the owning primitive's lock.
@usableFromInline
struct WaiterList {
    @usableFromInline private(set) var head: WaiterRef?
    private var tail: WaiterRef?
    /// Queued nodes, including ones whose wait already ended (not yet
    /// unlinked).
    private(set) var count = 0

    @inlinable
    var isEmpty: Bool { head == nil }

    mutating func append(_ node: WaiterRef) {
        precondition(!node.pointee.isQueued, "GreenThreads: waiter queued twice")
        node.pointee.isQueued = true
        node.pointee.next = nil
        node.pointee.prev = tail
        if let t = tail { t.pointee.next = node } else { head = node }
        tail = node
        count += 1
    }

    /// Puts `node` first: a mutex waiter that was woken and lost the race to
    /// a newcomer keeps its place at the head (Go's LIFO re-queue).
    mutating func prepend(_ node: WaiterRef) {
        precondition(!node.pointee.isQueued, "GreenThreads: waiter queued twice")
        node.pointee.isQueued = true
        node.pointee.prev = nil
        node.pointee.next = head
        if let h = head { h.pointee.prev = node } else { tail = node }
        head = node
        count += 1
    }

    mutating func popFirst() -> WaiterRef? {
        guard let node = head else { return nil }
        remove(node)
        return node
    }

    /// Unlinks `node` if it is still queued; a no-op otherwise (a waker
    /// dequeued it first).
    mutating func remove(_ node: WaiterRef) {
        guard node.pointee.isQueued else { return }
        let next = node.pointee.next, prev = node.pointee.prev
        if let p = prev { p.pointee.next = next } else { head = next }
        if let n = next { n.pointee.prev = prev } else { tail = prev }
        node.pointee.next = nil
        node.pointee.prev = nil
        node.pointee.isQueued = false
        count -= 1
    }

    /// Dequeues the first waiter whose claim the caller wins, dropping the
    /// dead ones in front of it (lazy removal: their own threads would
    /// unlink them anyway, and finding them here costs one failed CAS).
    /// The caller must `resume` the returned waiter.
    @inlinable @inline(__always)
    mutating func popClaimed() -> WaiterRef? {
        head == nil ? nil : popClaimedSlow()
    }

    @usableFromInline
    mutating func popClaimedSlow() -> WaiterRef? {
        while let node = popFirst() {
            if node.claim() { return node }
        }
        return nil
    }
}
