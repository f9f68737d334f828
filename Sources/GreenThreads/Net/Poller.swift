import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Poller.swift: one runtime's epoll instance, and how idle workers use it.
//
// ## Contract with the scheduling loop (see Worker.findRunnable/parkIdle)
//
// * `poll(into:)` (a zero-timeout epoll_wait): any worker, any time,
//   concurrently with the others (epoll allows it; each event goes to one
//   caller). Readiness wakes the waiting green threads through their
//   ordinary `Waker`s; a wake made on a worker lands in that worker's
//   run-next slot.
// * `blockIdle(worker:timeout:)`: at most one idle worker at a time (the
//   `blockerRole` CAS) sleeps in `epoll_wait` instead of on its futex. It is
//   still an ordinary sleeper in `Idle`: `Idle.wakeOne` unparks its futex
//   word and, if `Worker.inPoll` is set, also writes the eventfd.
//
// ## Why edge-triggered, with per-fd ready flags (not EPOLLONESHOT)
//
// Each socket is added once, for EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, and
// never modified again. With EPOLLONESHOT every park would need an
// `epoll_ctl(MOD)` to re-arm (one more syscall per read that would block,
// and a MOD racing a concurrent reader and writer on the same fd needs the
// two directions merged under a lock anyway). Edge triggering reports each
// *change* once; `PollDescriptor` remembers an edge that arrived while
// nobody waited (its per-direction `ready` flag), and every operation tries
// the syscall before it parks, so an edge is never needed twice. This is
// Go's netpoller design.
//
// ## Lifetime of registrations
//
// The kernel hands back a 64-bit tag per event, possibly after the fd was
// closed and its descriptor freed (an `epoll_wait` on another worker may
// hold events it has not dispatched yet). So the tag is not a pointer: it is
// a slot in `table` plus a generation, and a lookup whose generation no
// longer matches is dropped. `table` is guarded by `tableLock`, which also
// orders `epoll_ctl` against closing the epoll fd at shutdown.
//
// ## When workers poll
//
// `findRunnable` polls with timeout 0 after the local queues, the injectors
// and the timers, before spinning; a spinner polls every 8th round; a busy
// worker polls at its injector tick only when its deque is empty or its
// last poll is `busyPollNanos` old (Worker+Netpoll.swift). Each of those
// polls only if `worthPolling`: some green thread waits on an fd and no
// worker is blocked in epoll_wait already (Go's rule). A poll's wakes are
// one batch, queued on the polling worker's deque with one notification per
// thread it will not run itself (Worker+Netpoll.swift). A batch queues
// behind whatever the worker had queued before it, its threads in the
// order epoll reported them, so connections are served in the order they
// became ready, batch after batch. Each worker polls into its own heap
// buffer of 128 events (`PollEvents`, Go's netpoll size).
//
// ## Who blocks in epoll_wait, and why no wake-up is lost
//
// Once any fd is registered (`inUse`), an idle worker in `parkIdle` that
// wins the `blockerRole` CAS sleeps in `blockIdle` instead of on its futex,
// with the same timeout. It stays an ordinary member of `Idle`'s sleeper
// list, so the whole spin/park protocol (Worker.swift's header) applies;
// only how it is woken differs. `Worker.unpark` stores NOTIFIED in the
// parker word, fences, and writes the eventfd if `inPoll`; `blockIdle`
// stores `inPoll`, fences, and calls epoll_wait only if no notification is
// pending. Each side stores, fences, then loads the other's variable, so at
// least one sees the other; the eventfd is level-triggered, so a write that
// lands before the blocker enters epoll_wait still ends it at once.
// `Idle.wakeOne` prefers a futex sleeper when it has a choice, so the
// blocker keeps watching the fds.
//
// ## Why no readiness is lost
//
// An edge reaches either the blocker or a descriptor's `ready` flag, read
// at the next non-blocking poll, so a poll must follow every park on an fd
// made while nobody holds the role. If the parking thread's worker has
// nothing else queued, that worker is the one: its switch finds no local
// thread and goes to `findRunnable`, which polls, spins, and in `parkIdle`
// takes the free role or finds it taken. Only if it has more queued work
// does the parking thread call `Idle.notifyWork`, so that a sleeping worker
// comes round and takes the role. Two states still leave readiness without
// a collector (the role's holder woke for one event whose thread runs on
// without switching, or the holder was a spare that retired); sysmon covers
// them (`Sysmon.watchSockets`, using `lastPolled`), and a retiring spare
// notifies whenever sockets are in use.
//
// ## Outside the worker protocol
//
// * Plain OS threads never register: they poll(2) the one fd in 50 ms
//   slices (the slice bounds how long a `close()` from another thread
//   takes to reach them; poll does not wake on close).
// * User fds (`GreenThread.waitReadable/waitWritable`): a poll(2) with
//   timeout 0 first, then a temporary non-owning descriptor registered for
//   the one wait; EPOLL_CTL_ADD reports an fd already ready, so nothing
//   slips between the check and the registration.
// * Deadlock detection treats `ioWaiters > 0` as activity: those threads
//   wait for the outside world (RuntimeCore.swift).
// * Shutdown cancels parked I/O like any cancellable wait, then, once the
//   workers are joined, `close()` shuts the epoll fd and the eventfd;
//   sockets that outlive the runtime re-register with the runtime of their
//   next green-thread wait.
final class Poller: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the fds are immutable, the flags atomics,
    // and `table`, `freeSlots` and `closed` are guarded by `tableLock`.
    private let epfd: Int32
    private let wakeFD: Int32
    /// Tag of the eventfd's registration (no table slot has it).
    private static let wakeTag: UInt64 = .max

    /// Set once the first fd is registered: from then on an idle worker
    /// sleeps in epoll_wait. A program that never does I/O keeps the futex
    /// sleep (and its cheaper wake-up). Never cleared.
    let inUse = Atomic<Bool>(false)
    /// Green threads parked on fd readiness: events that can still wake
    /// something from outside (deadlock detection; whether polling can find
    /// anything). Changed under the fd's lock, by whoever adds or removes
    /// the waker.
    let ioWaiters = Atomic<Int>(0)
    /// Held by the one worker allowed to block in epoll_wait.
    let blockerRole = Atomic<Bool>(false)
    /// When an epoll_wait last returned (monotonic ns, to within
    /// `pollStampNanos`): how long readiness may have gone uncollected,
    /// for sysmon (`Sysmon.watchSockets`). Stored only once stale, so that
    /// workers polling thousands of times a second share the line read-only.
    let lastPolled = Atomic<Int64>(0)
    static let pollStampNanos: Int64 = 1_000_000

    private let tableLock = SpinLock()
    // Guarded by tableLock:
    private var table: [(generation: UInt32, descriptor: PollDescriptor?)] = []
    private var freeSlots: [Int] = []
    private var closed = false

    init() {
        let ep = gt_epoll_create()
        precondition(ep >= 0, "GreenThreads: epoll_create1 failed (errno \(-ep))")
        let ev = gt_eventfd_create()
        precondition(ev >= 0, "GreenThreads: eventfd failed (errno \(-ev))")
        epfd = ep
        wakeFD = ev
        // Level-triggered: the eventfd stays readable until drained, so a
        // signal written before the blocker reaches epoll_wait still ends it.
        let rc = gt_epoll_add(epfd, wakeFD, GT_EPOLLIN, Self.wakeTag)
        precondition(rc == 0, "GreenThreads: could not register the poller's eventfd (errno \(-rc))")
    }

    // MARK: Registration

    /// Adds `descriptor`'s fd to the epoll set for both directions, edge
    /// triggered. Returns 0 or a negative errno (EPERM: a regular file,
    /// which epoll cannot watch; EBADF: not an open fd).
    func register(_ descriptor: PollDescriptor) -> Int32 {
        tableLock.lock()
        defer { tableLock.unlock() }
        if closed { return -ESHUTDOWN }
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
        } else {
            slot = table.count
            table.append((0, nil))
        }
        table[slot].generation &+= 1
        let tag = UInt64(slot) | UInt64(table[slot].generation) << 32
        // EPOLLPRI: urgent data ends a stream read short with bytes left
        // behind it, so it turns the park-first shortcut off (StreamRead.swift).
        let events = GT_EPOLLIN | GT_EPOLLPRI | GT_EPOLLOUT | GT_EPOLLRDHUP | GT_EPOLLET
        let rc = gt_epoll_add(epfd, descriptor.fd, events, tag)
        if rc != 0 {
            freeSlots.append(slot)
            return rc
        }
        table[slot].descriptor = descriptor
        descriptor.registrationTag = tag
        inUse.store(true, ordering: .releasing)
        return 0
    }

    /// Removes the fd from the epoll set before it is closed (so a reused
    /// fd number is never confused with it) and retires its tag.
    func deregister(_ descriptor: PollDescriptor) {
        tableLock.lock()
        defer { tableLock.unlock() }
        let tag = descriptor.registrationTag
        let slot = Int(tag & 0xFFFF_FFFF)
        guard slot < table.count, table[slot].generation == UInt32(tag >> 32),
              table[slot].descriptor === descriptor else { return }
        if !closed { _ = gt_epoll_del(epfd, descriptor.fd) }
        table[slot].descriptor = nil
        freeSlots.append(slot)
    }

    private func lookup(_ tag: UInt64) -> PollDescriptor? {
        tableLock.lock()
        defer { tableLock.unlock() }
        let slot = Int(tag & 0xFFFF_FFFF)
        guard slot < table.count, table[slot].generation == UInt32(tag >> 32) else { return nil }
        return table[slot].descriptor
    }

    // MARK: Polling

    /// Whether a non-blocking poll could find anything: somebody waits on
    /// an fd and no worker is already blocked in epoll_wait collecting the
    /// events (Go skips its non-blocking poll for the same reason).
    @inline(__always)
    var worthPolling: Bool {
        ioWaiters.load(ordering: .relaxed) > 0 && !blockerRole.load(ordering: .relaxed)
    }

    /// Collects ready events without blocking, into the calling worker's
    /// `events` buffer, and wakes their waiters. Returns how many events it
    /// collected.
    @discardableResult
    func poll(into events: PollEvents) -> Int {
        wait(into: events, timeout: 0)
    }

    /// The idle worker's sleep, for the one that holds `blockerRole`:
    /// returns when an fd becomes ready, `timeout` (ns, < 0 forever)
    /// passes, or `Idle.wakeOne` signals the eventfd. Returns whether a
    /// notifier claimed the worker (its futex word was unparked), exactly
    /// like `gt_parker_park`.
    func blockIdle(worker: Worker, timeout: Int64) -> Bool {
        worker.inPoll.store(true, ordering: .sequentiallyConsistent)
        // Dekker with Worker.unpark: it stores NOTIFIED and then reads
        // inPoll; we store inPoll and then read the parker. Each side has
        // a full fence between, so at least one sees the other: either we
        // skip epoll_wait, or it writes the eventfd, which ends the wait
        // even if written before we enter it (level-triggered).
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        var woken = gt_parker_try(worker.parker)
        if !woken {
            let events = worker.pollEvents
            var n = wait(into: events, timeout: timeout)
            // A full buffer: more may be ready. Take them now, so the batch
            // the caller hands out covers every connection that is ready
            // (bounded: a flood must not keep this worker here).
            var rounds = 1
            while n == events.capacity, rounds < 4 {
                n = wait(into: events, timeout: 0)
                rounds += 1
            }
        }
        worker.inPoll.store(false, ordering: .sequentiallyConsistent)
        blockerRole.store(false, ordering: .releasing)
        if !woken { woken = gt_parker_try(worker.parker) }
        return woken
    }

    /// One epoll_wait into `events`; dispatches each event. Returns how
    /// many there were.
    private func wait(into events: PollEvents, timeout: Int64) -> Int {
        let n = Int(gt_epoll_wait(epfd, events.base, Int32(events.capacity), timeout))
        let now = gt_now_ns()
        if now - lastPolled.load(ordering: .relaxed) >= Self.pollStampNanos { lastPolled.store(now, ordering: .relaxed) }
        // EINTR (a signal) or EBADF after shutdown: nothing to deliver.
        guard n > 0 else { return 0 }
        // In epoll's order, the longest ready first: the worker queues the
        // batch so that it runs them in the order they are handed over
        // (Worker+Netpoll.swift, "First ready, first served").
        for i in 0..<n { _ = dispatch(events.base[i]) }
        return n
    }

    /// Ends a worker's `blockIdle` (called after unparking its futex word).
    func signal() {
        gt_eventfd_signal(wakeFD)
    }

    /// Hands readiness to the descriptor. Returns how many threads woke.
    private func dispatch(_ event: gt_poll_event) -> Int {
        if event.data == Self.wakeTag {
            gt_eventfd_drain(wakeFD)
            return 0
        }
        guard let descriptor = lookup(event.data) else { return 0 }
        return descriptor.deliver(events: event.events, poller: self)
    }

    // MARK: Shutdown

    /// Closes the epoll fd and the eventfd (workers are joined by now).
    /// Every registered descriptor forgets this poller (its waiters wake
    /// and retry; a later green-thread wait registers it with that thread's
    /// runtime). Registering here afterwards fails with ESHUTDOWN, which
    /// waits report as `NetError.Kind.runtimeShutDown`.
    func close() {
        tableLock.lock()
        if closed { tableLock.unlock(); return }
        closed = true
        _ = gt_close(epfd)
        _ = gt_close(wakeFD)
        let registered = table.compactMap(\.descriptor)
        table.removeAll()
        freeSlots.removeAll()
        tableLock.unlock()
        // Outside the table lock: descriptors take their own lock first.
        for d in registered { d.pollerClosed() }
    }

    var isClosed: Bool { tableLock.withLock { closed } }
}

/// One worker's room for a batch of events: on the heap, allocated once,
/// because a busy worker polls inside its switch, on the stack of a green
/// thread that may be small. Owned by the worker; only it polls into it.
struct PollEvents {
    /// As many as Go's netpoll takes at once: with a thousand connections
    /// ready, a 32-event buffer meant four epoll_waits per batch.
    static let batch = Int(GT_POLL_BATCH)

    let base: UnsafeMutablePointer<gt_poll_event>
    var capacity: Int { Self.batch }

    static func allocate() -> PollEvents {
        PollEvents(base: .allocate(capacity: batch))
    }

    func deallocate() { base.deallocate() }
}
