/// What keeps a runtime's core alive on behalf of its green threads.
///
/// Every green thread must keep its `RuntimeCore` alive (a `JoinHandle` can
/// outlive the `Runtime`). Retaining the core itself would put one shared
/// reference count in every spawn and every exit, and that cache line would
/// bounce between all the workers spawning at once (fork-join code does
/// nothing else). So each worker owns an anchor, its green threads retain
/// that instead, and the retain lands on a line the spawning worker
/// already owns. Threads spawned from outside share one more anchor.
///
/// Workers hold their anchors strongly, which makes a cycle
/// (core → worker → anchor → core); `RuntimeCore.shutdown` breaks it.
final class CoreAnchor: Sendable {
    let core: RuntimeCore

    init(core: RuntimeCore) {
        self.core = core
    }
}
