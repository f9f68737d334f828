import CContext
#if canImport(Glibc)
import Glibc
#endif

/// Why a green stack could not be mapped, in words a user can act on.
///
/// Stacks are bound when a green thread first runs, on a worker, long after
/// `go`/`spawn` returned (they do not throw): the green thread then ends
/// unrun, and this text is the description of the
/// `RuntimeError.outOfStackMemory` its `join` throws (SpawnLimits.swift).
/// A coroutine stack that cannot be mapped is thrown the same way where the
/// API can throw, and is fatal with this text only where it cannot
/// (`Generator.next()`). Where the kernel has guard regions (Linux 6.13+),
/// 64 stacks share one mapping and ENOMEM means memory; elsewhere
/// every stack is two VMAs (the stack and its guard page) and the usual
/// cause is the kernel's per-process mapping limit.
struct StackMapFailure: CustomStringConvertible {
    let errno: Int32
    let stackSize: Int
    /// Stacks `owner` holds mapped (live threads plus pooled ones).
    let stacksMapped: Int
    /// `vm.max_map_count`, if readable.
    let maxMapCount: Int?
    /// Who maps them: "this runtime" or "the coroutine stack pool".
    var owner = "this runtime"
    /// Whether stacks share slab mappings (`gt_stack_uses_guard_regions`).
    var sharedMappings = gt_stack_uses_guard_regions()

    var description: String {
        var s = "GreenThreads: could not map a \(stackSize)-byte green stack (errno \(errno)"
        s += errno == ENOMEM ? ", ENOMEM)" : ")"
        s += " with \(stacksMapped) stacks already mapped by \(owner)."
        if errno == ENOMEM && sharedMappings {
            s += " Stacks share mappings (64 per mapping, with guard regions), so this is memory:"
            s += " the machine, its overcommit policy or RLIMIT_AS leaves no room for more stacks."
        } else if errno == ENOMEM {
            let limit = maxMapCount.map(String.init) ?? "unknown"
            s += " Each stack costs 2 memory mappings (stack + guard page; other runtimes and"
            s += " mappings of the process count too) and"
            s += " vm.max_map_count is \(limit)"
            if let maxMapCount, 2 * stacksMapped + 1_000 >= maxMapCount {
                s += ", which these stacks have used up"
            }
            s += ". To hold N live green threads set vm.max_map_count above 2N + a margin"
            s += " (as root: sysctl -w vm.max_map_count=2200000 for a million, or run scripts/setup.sh);"
            s += " otherwise the machine (or RLIMIT_AS) is out of memory for stacks."
        }
        return s
    }

    /// Reads `/proc/sys/vm/max_map_count`.
    static func currentMaxMapCount() -> Int? {
        guard let f = fopen("/proc/sys/vm/max_map_count", "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 32)
        guard fgets(&buf, Int32(buf.count), f) != nil else { return nil }
        let digits = buf.prefix { $0 >= 0x30 && $0 <= 0x39 }.map { Character(UnicodeScalar(UInt8($0))) }
        return Int(String(digits))
    }
}
