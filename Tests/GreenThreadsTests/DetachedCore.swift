@testable import GreenThreads

/// The parts of a runtime with none of its worker threads running: a
/// 1-worker runtime, shut down at once, whose core lends its injectors,
/// poller and clock to workers and fibers that a test builds and drives by
/// hand, from the test thread (which plays the owning worker). Nothing else
/// can take what the test queues, so what it finds is what the code did.
final class DetachedCore: @unchecked Sendable {
    let runtime: Runtime

    init() {
        runtime = Runtime(configuration: .init(workers: 1, preemptionThreshold: nil, handoffThreshold: nil))
        runtime.shutdown()
    }

    var core: RuntimeCore { runtime.core }

    /// A worker that no thread runs and that no queue of the core knows.
    func worker(index: Int = 0) -> Worker {
        Worker(index: index, node: 0, core: core, seed: UInt64(index + 1))
    }

    /// A fiber that never runs, retained once (the scheduler's +1): queue
    /// entries need real objects, since queues link them through
    /// `queueNext`. Drop it with `release()`.
    func fiber() -> Unmanaged<Fiber> {
        .passRetained(Fiber(core: core, anchor: CoreAnchor(core: core)))
    }
}

extension Unmanaged where Instance == Fiber {
    /// The bit pattern the run queues hold for this fiber.
    var bits: UInt { UInt(bitPattern: toOpaque()) }
}
