#if canImport(Glibc)
import Glibc
#endif

/// A joinable pthread running a closure: the load generator's threads are
/// plain OS threads, never green threads, so it loads every server alike.
struct OSThread {
    private let thread: pthread_t

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// - Throws: `LoadError.system` if the thread cannot be created.
    static func start(_ body: @escaping @Sendable () -> Void) throws(LoadError) -> OSThread {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw .system("pthread_create: \(errnoText(rc))")
        }
        return OSThread(thread: thread)
    }

    func join() {
        pthread_join(thread, nil)
    }
}

/// All the load threads and the coordinator meet here once every connection
/// is up, so the timed phase starts everywhere at once. Single use.
final class Barrier: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `remaining` is guarded by `mutex`; `mutex`
    // and `condition` are touched only through pthread calls.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    /// Parties yet to arrive; guarded by `mutex`.
    private var remaining: Int

    init(parties: Int) {
        remaining = parties
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// Waits until every party has arrived (or withdrawn).
    func arrive() {
        pthread_mutex_lock(&mutex)
        remaining -= 1
        if remaining <= 0 {
            pthread_cond_broadcast(&condition)
        } else {
            while remaining > 0 { pthread_cond_wait(&condition, &mutex) }
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Stops waiting for `count` parties that will never come (threads
    /// that could not be created).
    func withdraw(_ count: Int) {
        pthread_mutex_lock(&mutex)
        remaining -= count
        if remaining <= 0 { pthread_cond_broadcast(&condition) }
        pthread_mutex_unlock(&mutex)
    }
}
