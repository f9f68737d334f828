import CContext
import Synchronization

// Deque.swift: each worker's work-stealing deque, a bounded Chase–Lev deque.
//
// The owning worker pushes and pops at the bottom (LIFO, so fork-join work
// stays cache-hot); any worker, the owner included, steals from the top
// (FIFO, so thieves take the oldest and usually largest piece of work).
// Orderings follow Lê, Pop, Cohen and Zappa Nardelli, "Correct and Efficient
// Work-Stealing for Weak Memory Models" (PPoPP 2013). `bottom` is written
// only by the owner; `top` only advances, by CAS (thieves, and the owner's
// last-item pop); slots are atomics accessed relaxed, so a racing read and
// overwrite is not undefined behaviour. Elements are `Unmanaged<Fiber>` bit
// patterns; the deque owns no retain.
//
// ## Why a fixed buffer
//
// Chase–Lev grows its array when full. Growing means retiring the old
// buffer while a slow thief may still read it, which needs epoch or
// hazard-pointer reclamation (as in crossbeam). Here a full deque refuses
// the push, and the owner spills the new item and the oldest half to the
// injection queue instead (Worker+RunQueue.swift, "Overflow and the
// injector"), as Tokio does.
//
// ## Push
//
// Write the slot, then store `bottom` with release: a thief that reads the
// new `bottom` with acquire sees the slot, and the green thread behind it.
// Every store of `bottom`, pop's included, is a release, so whichever value
// a thief reads it synchronises with the owner's pushes before it (a
// relaxed store would end the release sequence; a release fence before a
// relaxed store would do formally, but ThreadSanitizer does not model
// fences and would report each stolen thread's fields as a race). On x86
// each is the same plain `mov`; on AArch64 an `stlr` for `dmb` + `str`. `top` is read with acquire: a stale
// value only understates the free room, and a fresh one means the slot about
// to be overwritten was read by whoever claimed it (their sequentially
// consistent CAS releases; our acquire synchronises with it).
//
// ## The StoreLoad fence in pop
//
// The owner stores `bottom = b` (claiming slot b), then a full fence, then
// loads `top`. A thief loads `top`, a full fence, then loads `bottom`. Only a
// full fence orders an earlier store before a later load.
//
// Claim: the owner and a thief never both take item b. Suppose the thief
// took b. It read the old `bottom` (b+1) after its fence, so its fence comes
// before the owner's in the single total order S, or it would have seen the
// owner's store. It read `top == b`, written by a sequentially consistent CAS
// that precedes its fence in S (or the initial value). By the fence rule the
// owner's load of `top`, after its own fence, sees b or later. Above b, the
// deque is empty and the owner undoes its claim. At b, this is the last item,
// and both sides CAS `top` from b to b+1: exactly one wins. In the other
// order (the owner's fence first) the thief sees `bottom == b` and leaves
// slot b alone. This is why the CASes on `top` are sequentially consistent
// and not merely acquire-release.
//
// The last item: on `t == b` the owner CASes `top` and then restores
// `bottom = b+1` whether it won or lost, so `top == bottom` and the deque is
// empty either way.
//
// ## Steal
//
// A thief reads the slot *before* its CAS. Once `top` moves past t the owner
// may wrap around and reuse slot `t & mask`, so a read after the CAS could
// return the new occupant. A read before is safe: if the owner had already
// overwritten the slot, `top` must be past t (a push needs `b - top <
// capacity`), the CAS fails, and the value is dropped, which leaks nothing
// since slots own no retain. `top` never decreases and is a 64-bit `Int`, so
// a CAS with a stale `expected` never succeeds: no ABA. `steal` reports
// `.retry` when it loses a race; `stealOne` loops until it wins or sees the
// deque empty. `count` is approximate, for heuristics (steal half, spill
// sizes, `hasVisibleWork`) and tests.
//
// ## The owner's oldest-first take
//
// `takeOldest` (a yield's round robin, the fairness tick, a spill) is a
// steal without the full fence. That fence orders a *thief's* read of `top`
// before its read of `bottom`, against the owner's `pop`. The owner reads its
// own `bottom`, which nobody else writes, and is never inside its own `pop`
// meanwhile, so only the CAS on `top` is needed: it settles a race with a
// thief for the same item exactly as two thieves settle theirs. On x86 the
// fence is an `mfence`, about a sixth of a yield.

/// A bounded Chase–Lev work-stealing deque of green threads (see the
/// header above).
final class WorkStealingDeque: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every shared word (top, bottom, the
    // slots) is an atomic, used by the protocol in this file's header;
    // `capacity` and `mask` are immutable.

    static let defaultCapacity = 1024

    /// Next slot to steal. Advanced by thieves (and the owner's last-item
    /// pop) with a CAS; never decreases, so a stale value is never ABA.
    private let top = Atomic<Int>(0)
    /// Keeps `bottom`, which the owner writes on every push and pop, off
    /// the cache line thieves CAS: otherwise each steal stalls the owner.
    private let padding = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Next free slot. Written only by the owner, read by thieves.
    private let bottom = Atomic<Int>(0)
    private let slots: UnsafeMutablePointer<Atomic<UInt>>
    /// A power of two.
    let capacity: Int
    /// `capacity - 1`: the hot paths read only this, beside `bottom` and
    /// `slots` on the cache line every push and pop reads anyway.
    private let mask: Int

    /// `capacity` other than the default is for tests: a small ring reaches
    /// wrap-around and the full deque in a few operations.
    init(capacity: Int = WorkStealingDeque.defaultCapacity) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "deque capacity must be a power of two")
        self.capacity = capacity
        mask = capacity - 1
        // Page-aligned, so that its owner can move whole pages to its node
        // (Worker+Memory.swift) without moving anyone else's memory.
        let bytes = capacity * MemoryLayout<Atomic<UInt>>.stride
        slots = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: Int(gt_page_size()))
            .bindMemory(to: Atomic<UInt>.self, capacity: capacity)
        for i in 0..<capacity { (slots + i).initialize(to: Atomic(0)) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// The slots' memory, for placing it on a node.
    func withSlotMemory<R>(_ body: (UnsafeMutableRawPointer, Int) -> R) -> R {
        body(UnsafeMutableRawPointer(slots), capacity * MemoryLayout<Atomic<UInt>>.stride)
    }

    /// Owner only. Returns false when full (the caller spills).
    @inline(__always)
    func push(_ item: UInt) -> Bool {
        let b = bottom.load(ordering: .relaxed)
        // A stale `top` only understates free room: the check is conservative.
        let t = top.load(ordering: .acquiring)
        if b &- t > mask { return false }  // holds `capacity` items
        slots[b & mask].store(item, ordering: .relaxed)
        // Release: the slot's contents happen-before a thief that reads the
        // new bottom with acquire.
        bottom.store(b &+ 1, ordering: .releasing)
        return true
    }

    /// Owner only: the most recently pushed item.
    @inline(__always)
    func pop() -> UInt? {
        let b = bottom.load(ordering: .relaxed) &- 1
        bottom.store(b, ordering: .releasing)  // release: see the header, "Push"
        // StoreLoad: the bottom we just claimed must be visible to thieves
        // before we read top, or a thief and the owner could both take the
        // last item. Only a full fence orders a store before a later load.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let t = top.load(ordering: .relaxed)
        if t > b {
            bottom.store(b &+ 1, ordering: .releasing)  // was empty; undo
            return nil
        }
        let item = slots[b & mask].load(ordering: .relaxed)
        if t == b {
            // The last item: race the thieves for it on top.
            let won = top.compareExchange(
                expected: t, desired: t &+ 1,
                successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed
            ).exchanged
            bottom.store(b &+ 1, ordering: .releasing)
            return won ? item : nil
        }
        return item
    }

    enum Steal {
        case empty
        case retry  // lost a race; the deque may still hold work
        case success(UInt)
    }

    /// Any thread: the oldest item.
    @inline(__always)
    func steal() -> Steal {
        let t = top.load(ordering: .acquiring)
        // Pairs with the fence in pop(): either we see the owner's
        // decremented bottom, or the owner sees our advanced top.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let b = bottom.load(ordering: .acquiring)
        if t >= b { return .empty }
        // Read before the CAS: once top moves past t the owner may reuse
        // the slot. A value read from a slot we then fail to claim is dropped.
        let item = slots[t & mask].load(ordering: .relaxed)
        guard top.compareExchange(
            expected: t, desired: t &+ 1,
            successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed
        ).exchanged else { return .retry }
        return .success(item)
    }

    /// Any thread: steals until an item is won or the deque is seen empty.
    @inline(__always)
    func stealOne() -> UInt? {
        while true {
            switch steal() {
            case .success(let item): return item
            case .empty: return nil
            case .retry: continue
            }
        }
    }

    /// Owner only: the oldest item (a yield's round robin, the fairness
    /// tick, a spill).
    ///
    /// Cheaper than `steal()`: its full fence orders a thief's read of `top`
    /// before its read of `bottom`, against the owner's `pop`. The owner
    /// reads its own `bottom`, which nobody else writes, and is never inside
    /// its own `pop` meanwhile, so only the CAS on `top` is needed: it is
    /// what settles a race with a thief for the same item.
    @inline(__always)
    func takeOldest() -> UInt? {
        let b = bottom.load(ordering: .relaxed)
        while true {
            // Acquire: pairs with a thief's successful CAS, after which the
            // slot it vacated may be overwritten only by us.
            let t = top.load(ordering: .acquiring)
            if t >= b { return nil }
            let item = slots[t & mask].load(ordering: .relaxed)
            if top.compareExchange(
                expected: t, desired: t &+ 1,
                successOrdering: .sequentiallyConsistent, failureOrdering: .relaxed
            ).exchanged { return item }
        }
    }

    /// Approximate number of items (exact when called by the owner with no
    /// thief active). For heuristics and tests only.
    var count: Int {
        let b = bottom.load(ordering: .relaxed)
        let t = top.load(ordering: .relaxed)
        return max(0, b &- t)
    }

    var isEmpty: Bool { count == 0 }

    /// Owner only: two relaxed loads, no fence. The owner's `bottom` is
    /// exact and a stale `top` is only lower, so a non-empty deque never
    /// reads as empty (an emptied one may read non-empty for a moment;
    /// `pop` and `takeOldest` then find nothing).
    @inline(__always)
    var isEmptyForOwner: Bool {
        bottom.load(ordering: .relaxed) <= top.load(ordering: .relaxed)
    }
}
