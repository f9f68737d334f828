import CContext
#if canImport(Glibc)
import Glibc
#endif

/// Operations on the calling green thread.
public enum GreenThread {
    /// A green thread's identity, unique within its runtime.
    public struct ID: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public var description: String { "#\(rawValue)" }
    }

    /// The fiber running the caller, if the caller is a green thread.
    @inline(__always)
    static var currentFiber: Fiber? {
        Worker.current?.local.pointee.current?.takeUnretainedValue()
    }

    /// Lets the other runnable green threads of this worker run, then
    /// continues. On a plain OS thread, yields the CPU (`sched_yield`).
    public static func yield() {
        guard let raw = gt_current_worker() else {
            sched_yield()
            return
        }
        Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
            if worker.local.pointee.current != nil { worker.switchAway(.requeue) } else { sched_yield() }
        }
    }

    /// Parks the green thread for `duration` (a plain OS thread blocks).
    /// A zero or negative duration still lets the other green threads run.
    ///
    /// - Throws: `CancellationError` if the green thread (or a cancel scope
    ///   around the call) is cancelled before the time is up,
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline comes
    ///   first: the sleep ends early then, and only then.
    public static func sleep(for duration: Duration) throws {
        let deadline = Park.deadline(after: duration)
        let cause = Park.wait(reason: .sleep, deadline: deadline, cancellable: true, compactible: true) { _ in true }
        try cause.throwIfInterrupted()
    }

    /// Whether `cancel()` was called on a handle of the calling green
    /// thread (or its runtime is shutting down). False on an OS thread.
    public static var isCancelled: Bool {
        currentFiber?.cancelled.load(ordering: .relaxed) ?? false
    }

    /// The index of the worker running the calling green thread (0 up to
    /// `Runtime.workerCount`; a replacement worker that sysmon started
    /// beside a stuck one has an index beyond). nil off a runtime. A green
    /// thread may move to another worker at any yield or park.
    public static var currentWorker: Int? {
        Worker.current?.index
    }

    /// The NUMA node id (`Runtime.Topology.Node.id`) of the worker running
    /// the calling green thread; nil off a runtime.
    public static var currentNode: Int? {
        guard let worker = Worker.current else { return nil }
        return worker.core.topology.nodeID(ofWorker: worker.index)
    }

    /// The calling green thread's ID; nil on a plain OS thread.
    public static var current: ID? {
        currentFiber.map { ID(rawValue: $0.id) }
    }

    /// The calling green thread's name, as given to `go(name:)` or
    /// `Runtime.spawn(name:)`; nil for an unnamed one, and on a plain OS
    /// thread.
    public static var name: String? {
        currentFiber?.name
    }
}
