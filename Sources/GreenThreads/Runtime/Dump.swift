// Dump.swift: what every live green thread is doing, in the manner of Go's
// goroutine dump (SIGQUIT, runtime.Stack).
//
// ## The problem
//
// A service with thousands of parked green threads hangs, or a stress test
// stops making progress: which thread waits on what, since when, started
// where, and called from which code? A debugger sees the OS threads, which
// run the scheduler or some other green thread; a parked green thread's
// frames are on a stack no OS thread is running. The deadlock report
// (RuntimeCore.swift) answers part of this, but only once everything is
// stuck, and without call stacks.
//
// ## What is recorded, and what it costs
//
//  * `name` and the spawn site (`go(name:file:line:)`): a `String?` that is
//    nil unless given, a `StaticString` and a `UInt`, stored in the fiber
//    once before it is queued. No allocation, a few stores per spawn.
//  * The park's start, `parkedTicks`: one `gt_ticks()` read per park (a
//    time-stamp counter instruction, gt_dump.h), converted to time only
//    when a dump is made. Rejected: the monotonic clock at park, a vDSO
//    call that wraps the same counter read in a sequence-locked read of the
//    kernel's clock data and its scaling, on the channel round trip's path;
//    and the runtime's clock, which under `.virtual` time stands still.
//  * The wait's reason (`WaitReason`), which the deadlock report already
//    keeps.
//
// Everything else is found when the dump is made, from the registry of live
// green threads (Registry.swift). A thread that was spawned but never ran
// is not in it yet (it joins at its first run, Worker+Stacks.swift): the
// dump counts those rather than listing them.
//
// ## Backtraces from the saved context
//
// A parked green thread's registers are in the frame `gt_switch_raw` left at
// its saved stack pointer (switch_frame.h): the return address into its
// caller and that caller's frame pointer. From there the frame-pointer chain
// ([fp] = the caller's fp, [fp + 8] = the return address) leads up to the
// entry trampoline, which zeroes the frame pointer. `gt_context_backtrace`
// walks it reading only words inside the thread's stack, and stops at the
// first frame pointer outside it, misaligned, or not above the previous one;
// so a broken chain costs frames, never a fault.
//
// This relies on frame pointers. Swift on Linux keeps them: swiftc asks LLVM
// for them on every function at -Onone ("frame-pointer"="all") and on every
// function that calls another at -O ("non-leaf"); SwiftPM compiles C targets
// with -fno-omit-frame-pointer. A leaf function has none, but a parked
// thread's frames are all callers (the innermost one called the switch).
// Where the chain breaks: code built without frame pointers (a C library
// compiled with -fomit-frame-pointer, as distribution builds of some are)
// hides its own caller's frame or ends the walk early; a shrink-wrapped
// Swift function that parks from its fast path, before its prologue, would
// hide its own frame (none in this library park there).
//
// Rejected: recording a shadow stack at each switch (or each call) would
// cost every switch, for a dump that is rare. Unwinding with the DWARF CFI
// (.eh_frame, as Swift's crash backtracer does) works without frame
// pointers but needs an unwinder that can start from a saved register set
// on a stack not its own; libunwind's local API unwinds the caller only, and
// a remote unwinder is a large dependency for what the chain already gives.
//
// Races: the thread may be woken, run and park again while its stack is
// read. Its stack stays mapped (green stacks are unmapped only at shutdown,
// after the workers are joined), so a read never faults; and the walk is
// bracketed like a sequence lock: the armed ticket (WaitTarget.swift) and
// the `parked` state are read (acquire) before it and read again after an
// acquire fence. Every wake claims the ticket first, and every new park
// arms a fresh one, so an unchanged odd ticket with `parked` on both sides
// means the thread did not run in between; otherwise the frames are
// dropped and the dump says the thread moved. A compacted sleeper's stack
// (StackCompaction.swift) holds no frames while it sleeps: no backtrace.
//
// Names and sites need no lock: a fiber's are written before it is queued,
// and a cached fiber's (FiberCache.swift) are rewritten for its next spawn
// before the releasing store that takes it out of `finished`. The dump reads
// them after an acquiring load of the state and skips `finished` fibers; and
// while it holds a fiber (the registry walk retains each), the cache cannot
// hand that fiber out again, since it reuses only uniquely referenced ones.
//
// ## Symbols
//
// `dladdr` (and `backtrace_symbols`) read only the dynamic symbol table:
// exported symbols of shared libraries, and of an executable only what it
// exports. Swift code in the executable, local functions, closures and
// everything `private` have no dynamic symbol, so dladdr names a frame after
// the nearest exported symbol, wrongly, or not at all. `gt_symbolize`
// (symbolize.c) does what Swift's own crash backtracer does: finds the image
// that maps the address (`dl_iterate_phdr`), maps its file (the executable
// through /proc/self/exe), reads the full symbol table (.symtab; .dynsym when
// the file was stripped), keeps it sorted, and demangles Swift names through
// the runtime's `swift_demangle`. Each image's table is read once and kept
// for the life of the process. A stripped executable gives only exported
// names; without any symbol a frame shows its address and image. Return
// addresses point after the call: the lookup uses the address minus one, so
// a call that ends a function is not named after the next one.
//
// ## Asking for a dump with a signal
//
// `Configuration.dumpSignal` (dump_signal.c has the handler's design): the
// handler only stores to a futex word and wakes this runtime's dump thread
// (`DumpListener`), which builds the dump and writes it to stderr.

import CContext
import Synchronization

extension Runtime {
    /// Every live green thread of this runtime, as text, in the manner of
    /// Go's goroutine dump: per thread its ID, name, state (running,
    /// runnable, parked, blocking call), what a parked one waits on and
    /// for how long, where it was spawned, and for a parked one the
    /// functions it is parked in, innermost first:
    ///
    /// ```text
    /// green thread #7 "conn 42" [parked: receive from a channel, 1.2 s]:
    ///   GreenThreads.Channel.receive() -> A? +0x8f
    ///   App.serve(conn: App.Connection) -> () +0x4c
    ///   ...
    ///   spawned at App/Server.swift:42
    /// ```
    ///
    /// Green threads spawned but not yet run are counted, not listed. A
    /// thread woken while the dump reads its stack is shown without frames.
    /// Callable from any thread, green or not; it takes locks and
    /// allocates, so it is for diagnosis, not for hot paths. To get it on a
    /// signal, see ``Configuration/dumpSignal``.
    public func dump() -> String {
        core.dump()
    }
}

extension RuntimeCore {
    /// Deepest backtrace a dump shows per thread.
    static let dumpFrames = 64

    func dump() -> String {
        let nsPerTick = gt_ns_per_tick()
        let now = gt_ticks()
        var threads: [(id: UInt64, text: String)] = []
        registry.forEach { f in
            if f.state == .finished { return }  // in a fiber cache
            threads.append((f.id, describe(f, nsPerTick: nsPerTick, now: now)))
        }
        threads.sort { $0.id < $1.id }
        let unstarted = max(0, liveCount - threads.count)
        var s = "GreenThreads dump: \(threads.count) green thread\(threads.count == 1 ? "" : "s")"
        s += " on \(baseWorkerCount) worker\(baseWorkerCount == 1 ? "" : "s")"
        if unstarted > 0 { s += "; about \(unstarted) more spawned and not yet run" }
        s += "\n"
        for t in threads { s += "\n" + t.text }
        return s
    }

    /// One thread's paragraph.
    private func describe(_ f: Fiber, nsPerTick: Double, now: UInt64) -> String {
        // Read before the state: a thread parked across both reads keeps its
        // reason and tick (they change only while it runs).
        let reason = f.waitReason
        let ticks = f.parkedTicks
        var frames: [UInt]?
        let state: String
        switch f.state {
        case .running:
            state = "running"
        case .queued, .wakePending:
            state = "runnable"
        case .finished:
            state = "finished"
        case .parking, .parked, .compacting:
            frames = backtrace(of: f)
            let since = Self.duration(nanos: Double(now &- ticks) * nsPerTick)
            if case .blocking = reason { state = "blocking call, \(since)" } else { state = "parked: \(reason), \(since)" }
        }
        let named = f.name.map { " \($0.debugDescription)" } ?? ""
        var s = "green thread #\(f.id)\(named) [\(state)]:\n"
        if let frames {
            if frames.isEmpty { s += "  (no frames: switching, compacted, or woken while read)\n" }
            for pc in frames { s += "  \(Self.symbolized(pc))\n" }
        }
        s += "  spawned at \(f.spawnFile):\(f.spawnLine)\n"
        return s
    }

    /// The return addresses of a parked thread, innermost first; empty if
    /// it is not parked with its stack in place, or ran while being read
    /// (the sequence-lock bracket of the file header).
    private func backtrace(of f: Fiber) -> [UInt] {
        let ticket = f.claim.load(ordering: .acquiring)
        guard ticket & 1 == 1, f.state == .parked, f.hasStack, f.compactedStack == nil else { return [] }
        let stack = f.stack
        guard let base = stack.base else { return [] }
        let lo = UInt(bitPattern: base)
        var pcs = [UInt](repeating: 0, count: Self.dumpFrames)
        let n = pcs.withUnsafeMutableBufferPointer {
            gt_context_backtrace(f.context, lo, lo + UInt(stack.size), $0.baseAddress, $0.count)
        }
        atomicMemoryFence(ordering: .acquiring)
        guard f.claim.load(ordering: .relaxed) == ticket, f.state == .parked else { return [] }
        return Array(pcs.prefix(n))
    }

    /// `function +0xoffset`, or the address and its image.
    static func symbolized(_ pc: UInt) -> String {
        let nameCap = 1024, imageCap = 256
        var name = [CChar](repeating: 0, count: nameCap)
        var image = [CChar](repeating: 0, count: imageCap)
        var offset: UInt = 0
        // A return address: look up the call itself (see the header).
        let found = gt_symbolize(pc &- 1, &name, nameCap, &offset, &image, imageCap)
        let imageName = String(decoding: image.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let hexPC = "0x" + String(pc, radix: 16)
        switch found {
        case 1:
            let function = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return "\(function) +0x\(String(offset &+ 1, radix: 16))"
        case 0: return "\(hexPC) in \(imageName)"
        default: return hexPC
        }
    }

    /// "850 ms", "1.2 s", "3 minutes": Go's dump says minutes only, a
    /// stuck service needs the short ones too.
    static func duration(nanos: Double) -> String {
        let ms = Int(max(0, nanos) / 1e6)
        if ms < 1000 { return "\(ms) ms" }
        if ms < 60_000 { return "\(ms / 1000).\(ms % 1000 / 100) s" }
        let minutes = ms / 60_000
        return minutes == 1 ? "1 minute" : "\(minutes) minutes"
    }
}
