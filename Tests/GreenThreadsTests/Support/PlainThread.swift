import CContext

/// Runs `body` on a new OS thread (no async task, no runtime) and waits for it.
func onAnotherThread(_ body: @escaping () -> Void) {
    gt_thread_join(startPlainThread(body))
}

/// Starts `body` on a new OS thread (no async task, no runtime); the caller
/// joins the returned handle with `gt_thread_join`.
func startPlainThread(_ body: @escaping () -> Void) -> UInt64 {
    final class Job { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    let job = Unmanaged.passRetained(Job(body)).toOpaque()
    var handle: UInt64 = 0
    let err = gt_thread_start({ raw in
        let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
        job.body()
    }, job, &handle)
    precondition(err == 0)
    return handle
}
