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

    static func start(_ body: @escaping @Sendable () -> Void) -> OSThread {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(errnoText(rc))")
        return OSThread(thread: thread)
    }

    func join() {
        pthread_join(thread, nil)
    }
}

/// All the load threads and the coordinator meet here once every connection
/// is up, so the timed phase starts everywhere at once.
final class Barrier: @unchecked Sendable {
    private var barrier = pthread_barrier_t()

    init(parties: Int) {
        pthread_barrier_init(&barrier, nil, UInt32(parties))
    }

    deinit { pthread_barrier_destroy(&barrier) }

    func arrive() {
        pthread_barrier_wait(&barrier)
    }
}
