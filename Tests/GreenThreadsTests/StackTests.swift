import CContext
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GreenThreads

/// Lines of /proc/self/maps: the process's memory mappings (VMAs).
func mappingCount() -> Int {
    guard let f = fopen("/proc/self/maps", "r") else { return -1 }
    defer { fclose(f) }
    var n = 0
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), f) != nil { n += 1 }
    return n
}

@Suite("Stacks")
struct StackTests {
    /// With guard regions, 64 stacks share one mapping, so thousands of live
    /// green threads add tens of mappings, not thousands (which is what lets
    /// a million fit under the default vm.max_map_count of 65,530).
    @Test("live green threads share stack mappings where guard regions work")
    func liveThreadsShareMappings() throws {
        let n = 3_000
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (before, during) = try rt.run { () throws -> (Int, Int) in
            let before = mappingCount()
            let gate = Channel<Int>(capacity: 0)
            let hs = (0..<n).map { _ in go { _ = try gate.receive() } }
            try waitUntilParked(hs)
            let during = mappingCount()
            gate.close()
            _ = try joinAll(hs)
            return (before, during)
        }
        #expect(before > 0 && during > 0)
        if gt_stack_uses_guard_regions() {
            // n/64 slabs, plus slack for the allocator's and the threads' own mappings.
            #expect(during - before < n / 64 + 200, "\(during - before) new mappings for \(n) stacks")
        } else {
            #expect(during - before >= n, "one mapping per stack without guard regions")
        }
    }

    /// A stack's guard page faults for the kernel too (EFAULT), whatever
    /// the mechanism, and stacks handed out at once never overlap.
    @Test("every stack has a guard page and stacks never overlap")
    func stacksAreGuardedAndDisjoint() throws {
        let (guarded, disjoint) = try Self.guardedAndDisjoint()
        #expect(guarded)
        #expect(disjoint)
    }

    /// The same for stacks guarded one by one, the path of a kernel that
    /// refuses a vector of guard installs. In a child process: the switch
    /// is for the whole process.
    @Test("every stack has a guard page when guards are installed one by one")
    func stacksGuardedOneByOne() async {
        await #expect(processExitsWith: .success) {
            gt_stack_guards_disable_batching()
            precondition(gt_stack_guards_batched() == 0)
            let (guarded, disjoint) = try Self.guardedAndDisjoint()
            precondition(guarded && disjoint)
        }
    }

    /// Maps 200 stacks of two sizes (several slabs, and a slab given up
    /// half carved when the size changes) and frees them: whether every
    /// one's guard page faults for the kernel (EFAULT) while its lowest
    /// usable byte does not, and whether no two overlap.
    static func guardedAndDisjoint() throws -> (guarded: Bool, disjoint: Bool) {
        var stacks: [gt_stack] = []
        defer { for var s in stacks { gt_stack_free(&s) } }
        for i in 0..<200 {
            var s = gt_stack()
            let rc = gt_stack_alloc(i < 100 ? 64 * 1024 : 48 * 1024, &s)
            guard rc == 0 else { throw StackAllocFailed(errno: -rc) }
            stacks.append(s)
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw StackAllocFailed(errno: errno) }
        defer { close(fds[0]); close(fds[1]) }
        var guarded = true
        for s in stacks {
            let base = UnsafeMutableRawPointer(s.base!)
            if !(write(fds[1], base - 1, 1) == -1 && errno == EFAULT) { guarded = false }
            if write(fds[1], base, 1) != 1 { guarded = false }
            var byte: UInt8 = 0
            _ = read(fds[0], &byte, 1)
        }
        let ranges = stacks.map { (UInt(bitPattern: $0.mapping), UInt(bitPattern: $0.base) + UInt($0.size)) }
            .sorted { $0.0 < $1.0 }
        let disjoint = zip(ranges, ranges.dropFirst()).allSatisfy { $0.1 <= $1.0 }
        return (guarded, disjoint)
    }
}

struct StackAllocFailed: Error {
    let errno: Int32
}
