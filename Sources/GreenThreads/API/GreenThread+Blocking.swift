import CContext

extension GreenThread {
    /// Runs `body` on one of the runtime's blocking threads and parks the
    /// calling green thread until it returns, so a blocking call (file I/O,
    /// a C library, `getaddrinfo`) stalls neither the worker nor the other
    /// green threads on it. Returns the body's value or rethrows its error.
    ///
    /// On a plain OS thread the body simply runs inline.
    ///
    /// At most `Runtime.Configuration.blockingThreads` bodies run at once
    /// (threads start on demand); further calls wait their turn.
    ///
    /// Neither cancellation nor a `withDeadline` scope ends this wait: the
    /// green thread waits for the body to finish, and gets its result. The
    /// body is a non-escaping closure that may use the caller's stack (its
    /// captures, `inout` state), so the caller cannot leave while the body
    /// still runs, and no call can stop a thread inside a system call. And
    /// `rethrows` cannot report an interruption for a non-throwing body.
    /// Give the body its own limit where the call has one (a file or socket
    /// timeout), and call `try GreenThread.checkCancellation()` afterwards
    /// to stop at once if the thread was cancelled or its deadline passed
    /// meanwhile. Scopes of the caller do not reach into the body, which
    /// runs on another thread.
    public static func blocking<T>(_ body: () throws -> T) rethrows -> T {
        try runBlocking(body, rescue: { throw $0 })
    }

    /// The body's error is carried across threads as a value, then rethrown
    /// through `rescue`: a `rethrows` function may only throw what its
    /// closure arguments throw (Dispatch's `sync` does the same).
    private static func runBlocking<T>(_ body: () throws -> T, rescue: (any Error) throws -> T) rethrows -> T {
        guard let worker = Worker.current, worker.local.pointee.current != nil else {
            return try body()
        }
        let pool = worker.core.blockingPool
        var result: T?
        var failure: (any Error)?
        // SAFETY: the escaping copy is only called while this frame is
        // parked below (the job wakes us after `run` returns), and the wait
        // cannot end any other way (not cancellable, no deadline).
        withoutActuallyEscaping(body) { escapable in
            let job = BlockingPool.Job {
                do { result = try escapable() } catch { failure = error }
            }
            var inline = false
            _ = Park.wait(reason: .blocking, cancellable: false) { waker in
                job.waker = waker
                if pool.submit(job) { return true }
                inline = true
                return false
            }
            if inline {
                job.run.unsafelyUnwrapped()
                job.run = nil
            }
        }
        if let failure { return try rescue(failure) }
        return result!
    }
}
