import CContext
import Synchronization
import Testing
@testable import GreenThreads

@Suite("Deque")
struct DequeTests {
    @Test func ownerIsLIFOAndThievesAreFIFO() {
        let d = WorkStealingDeque()
        for i in 1...5 { #expect(d.push(UInt(i))) }
        #expect(d.pop() == 5)
        #expect(d.pop() == 4)
        #expect(d.stealOne() == 1)
        #expect(d.stealOne() == 2)
        #expect(d.pop() == 3)
        #expect(d.pop() == nil)
        #expect(d.stealOne() == nil)
        #expect(d.isEmpty)
    }

    @Test func refusesPushWhenFullAndWrapsAround() {
        let d = WorkStealingDeque()
        for round in 0..<3 {
            for i in 0..<d.capacity { #expect(d.push(UInt(round * 1000 + i + 1))) }
            #expect(!d.push(99_999))
            #expect(d.count == d.capacity)
            for i in 0..<d.capacity { #expect(d.stealOne() == UInt(round * 1000 + i + 1)) }
            #expect(d.isEmpty)
        }
    }

    /// The owner pushes and takes 10^6 items (newest with `pop`, oldest with
    /// `takeOldest`, at random) while thieves steal; every item must be taken
    /// exactly once.
    @Test(arguments: [1, 3])
    func everyItemTakenExactlyOnce(thieves: Int) {
        let total = 1_000_000
        let d = WorkStealingDeque()
        let seen = Marks(count: total + 1)
        let done = Atomic<Bool>(false)
        let stolen = Atomic<Int>(0)

        let threads = (0..<thieves).map { _ in
            startThread {
                var local = 0
                while !done.load(ordering: .acquiring) || !d.isEmpty {
                    if let x = d.stealOne() {
                        seen.mark(Int(x))
                        local += 1
                    }
                }
                stolen.add(local, ordering: .relaxed)
            }
        }
        var popped = 0
        var next = 1
        var rng = FastRandom(seed: 42)
        while next <= total {
            // Random bursts of pushes and pops keep the deque near empty, where
            // the owner and the thieves race for the last item.
            let burst = 1 + rng.next(below: 8)
            for _ in 0..<burst where next <= total {
                if d.push(UInt(next)) { next += 1 } else { break }
            }
            for _ in 0..<rng.next(below: 8) {
                if let x = rng.next(below: 3) == 0 ? d.takeOldest() : d.pop() {
                    seen.mark(Int(x))
                    popped += 1
                }
            }
        }
        while let x = d.pop() {
            seen.mark(Int(x))
            popped += 1
        }
        done.store(true, ordering: .releasing)
        threads.forEach { joinThread($0) }
        #expect(popped + stolen.load(ordering: .relaxed) == total)
        var bad = 0
        for i in 1...total where seen.value(i) != 1 { bad += 1 }
        #expect(bad == 0)
    }
}

/// One atomic counter per item, shared with the thief threads.
final class Marks: @unchecked Sendable {
    private let slots: UnsafeMutablePointer<Atomic<UInt8>>
    private let count: Int
    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        for i in 0..<count { (slots + i).initialize(to: Atomic(0)) }
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }
    func mark(_ i: Int) { slots[i].add(1, ordering: .relaxed) }
    func value(_ i: Int) -> UInt8 { slots[i].load(ordering: .relaxed) }
}

// MARK: - Plain OS threads for tests

private final class ThreadBody: @unchecked Sendable {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

private let threadEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().body()
}

/// Starts an OS thread (not a green thread) running `body`.
func startThread(_ body: @escaping @Sendable () -> Void) -> UInt64 {
    var handle: UInt64 = 0
    let rc = gt_thread_start(threadEntry, Unmanaged.passRetained(ThreadBody(body)).toOpaque(), &handle)
    precondition(rc == 0)
    return handle
}

func joinThread(_ handle: UInt64) { gt_thread_join(handle) }
