import CContext
#if canImport(Glibc)
import Glibc
#endif

/// The thread that writes `Runtime.dump()` to stderr when
/// `Configuration.dumpSignal` arrives. The signal handler only wakes it
/// (dump_signal.c says why); everything that allocates or locks happens
/// here, on an OS thread of its own that sleeps until then.
final class DumpListener: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `slot` and `signal` are immutable;
    // `thread` is written once by `start`, before any other thread can see
    // the listener, and read by `stop`, called once by shutdown.
    private let slot: Int32
    private let signal: Int32
    private var thread: UInt64 = 0

    /// Starts listening for `signal` on behalf of `core`, which must stop
    /// the listener (shutdown does) before it goes away: the thread holds it
    /// unretained, since a reference from it would keep the core alive.
    init(signal: Int32, core: RuntimeCore) {
        let slot = gt_dump_signal_add(signal)
        precondition(slot >= 0, "GreenThreads: could not install the handler for dumpSignal \(signal)")
        self.slot = slot
        self.signal = signal
        let context = Context(slot: slot, core: Unmanaged.passUnretained(core))
        let rc = gt_thread_start(listenerMain, Unmanaged.passRetained(context).toOpaque(), &thread)
        precondition(rc == 0, "GreenThreads: could not start the dump thread (errno \(-rc))")
    }

    /// Stops listening (the signal's previous action is back once no
    /// runtime listens for it), joins the thread, frees the slot.
    func stop() {
        gt_dump_signal_stop(slot)
        gt_thread_join(thread)
        gt_dump_signal_release(slot)
    }

    /// Refused at `Runtime.init`: signals that report a fault, which a
    /// handler returning normally would re-raise forever, and those that
    /// cannot be caught.
    static func refusal(of signal: Int32) -> String? {
        let refused: [(Int32, String)] = [
            (SIGSEGV, "SIGSEGV"), (SIGBUS, "SIGBUS"), (SIGILL, "SIGILL"), (SIGFPE, "SIGFPE"),
            (SIGTRAP, "SIGTRAP"), (SIGSYS, "SIGSYS"), (SIGKILL, "SIGKILL"), (SIGSTOP, "SIGSTOP"),
        ]
        if let (_, name) = refused.first(where: { $0.0 == signal }) {
            return "GreenThreads: dumpSignal cannot be \(name)"
        }
        if signal <= 0 || signal >= 65 { return "GreenThreads: dumpSignal \(signal) is not a signal number" }
        return nil
    }

    fileprivate final class Context {
        let slot: Int32
        let core: Unmanaged<RuntimeCore>
        init(slot: Int32, core: Unmanaged<RuntimeCore>) {
            self.slot = slot
            self.core = core
        }
    }
}

private let listenerMain: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let context = Unmanaged<DumpListener.Context>.fromOpaque(arg!).takeRetainedValue()
    while gt_dump_signal_wait(context.slot) == 1 {
        let text = context.core._withUnsafeGuaranteedRef { $0.dump() }
        gt_write_stderr(text)
    }
}
