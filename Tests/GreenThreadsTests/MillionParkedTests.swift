import CContext
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GreenThreads

// Release builds only: a debug build spawns and wakes a million green
// threads several times slower, and the test checks capacity, not code
// paths the debug suites do not already cover. Its memory figure (peak RSS
// per parked thread) is measured by `gt-bench run parkmany`, not here.
#if !DEBUG

/// One million green threads alive at once, each parked on a channel, then
/// all woken and joined, within the default `vm.max_map_count` (65,530).
/// What makes it fit: stacks are carved 64 to a mapping with guard regions
/// (StackPool.swift), and a parked thread holds about one page of RSS.
@Suite("MillionParked")
struct MillionParkedTests {
    static let target = 1_000_000

    /// The default `vm.max_map_count`: what an unconfigured machine allows.
    static let defaultMaxMapCount = 65_530

    /// How many threads this machine can hold parked: 10^6, unless stacks
    /// need a mapping each (no guard regions: two VMAs per stack against
    /// the limit actually set) or memory is short (about 8 KiB per parked
    /// thread, twice the measured cost, must fit in MemAvailable).
    static func count() -> Int {
        var n = target
        if !gt_stack_uses_guard_regions() {
            let limit = readNumber("/proc/sys/vm/max_map_count", field: nil) ?? defaultMaxMapCount
            n = min(n, (limit - mappingCount() - 2_000) / 2)
        }
        if let availableKiB = readNumber("/proc/meminfo", field: "MemAvailable:") {
            n = min(n, availableKiB / 8)
        }
        return n
    }

    /// The first number in a /proc file, or the one after `field`.
    static func readNumber(_ path: String, field: String?) -> Int? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let rest: Substring
            if let field {
                guard text.hasPrefix(field) else { continue }
                rest = text.dropFirst(field.count)
            } else {
                rest = Substring(text)
            }
            return Int(rest.filter(\.isNumber))
        }
        return nil
    }

    @Test("a million green threads parked on a channel at once, all woken and joined, under the default vm.max_map_count")
    func millionParked() throws {
        let n = Self.count()
        if n < Self.target {
            print("MillionParked: only \(n) green threads fit here (guard regions: \(gt_stack_uses_guard_regions()), MemAvailable \((Self.readNumber("/proc/meminfo", field: "MemAvailable:") ?? 0) / 1_048_576) GiB)")
        }
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (peak, woken, sum, mappings) = try rt.run { () throws -> (RuntimeStats, Int, Int, Int) in
            let gate = Channel<Int>(capacity: 0)
            // Each thread returns the value it received, or -1 if it was
            // woken by the close.
            let handles = (0..<n).map { _ in go { try gate.receive() ?? -1 } }
            try waitUntilParked(handles)
            let peak = rt.stats
            let mappings = mappingCount()
            // Half are woken by a value each, the rest by the close.
            for v in 0..<n / 2 { try gate.send(v) }
            gate.close()
            let results = try joinAll(handles)
            return (peak, results.filter { $0 >= 0 }.count, results.reduce(0) { $0 + max($1, 0) }, mappings)
        }
        #expect(peak.live == n + 1, "every thread was alive at once (and the main one)")
        #expect(peak.stacksMapped >= n + 1)
        #expect(mappings > 0)
        if gt_stack_uses_guard_regions() {
            #expect(mappings < Self.defaultMaxMapCount, "\(mappings) mappings with \(n) parked threads")
        }
        #expect(woken == n / 2, "each value went to exactly one receiver")
        #expect(sum == (n / 2) * (n / 2 - 1) / 2, "the values received are exactly the values sent")
        var after = rt.stats
        let start = gt_now_ns()
        while after.live != 0 && gt_now_ns() - start < 10_000_000_000 {
            usleep(1_000)
            after = rt.stats
        }
        #expect(after.live == 0)
        #expect(after.completed == after.spawned)
        rt.shutdown()
        #expect(rt.stats.stacksMapped == 0, "every stack unmapped at shutdown")
    }
}

#endif
