// GreenRWLock.swift: a readers-writer lock that parks green threads.
//
// ## The problem
//
// A read-mostly structure (a routing table, a cache) wants any number of
// readers inside at once and a writer alone. The classic failure is writer
// starvation: if a reader may enter whenever no writer *holds* the lock,
// overlapping readers keep the count above zero forever and a writer never
// gets in. The opposite policy (writers always first) starves readers under
// a stream of writers.
//
// ## Policy (Go's sync.RWMutex)
//
//  * A reader enters at once only if no writer holds the lock *and none is
//    queued*. A queued writer therefore closes the door to new readers; the
//    readers already inside drain, and the last one hands the lock to the
//    writer. That bounds a writer's wait by the longest read in progress.
//  * A writer's unlock admits every reader queued behind it, as one batch,
//    before the next writer; only if none is queued does it hand the lock
//    to the next writer. So writers and reader batches alternate, and
//    neither side starves the other.
//  * Writers are served first-come first-served among themselves.
//
// ## Protocol
//
// One SpinLock guards the whole state: the active reader count, the writer
// flag and two WaiterLists. Every release *hands the lock over*: it claims
// the waiters that get it (WaiterList's `popClaimed`), counts them in
// (`readers += n`, or `writing = true`) under the SpinLock, and resumes them
// after releasing it, as GreenSemaphore hands over a permit. A waiter resumed
// with `.notified` therefore already holds the lock; there is no re-check
// loop and no barging.
//
// A waiter whose wait ended otherwise (cancellation, a deadline) was not
// claimed, so it holds nothing and unlinks itself (Park.waitQueued). A
// *writer* that leaves may have been what kept queued readers out (or the
// lock may have come free while it was queued behind a dead head), so its
// unlink re-runs the hand-over (`grant`) under the same lock. A reader that
// leaves blocks nobody.
//
// Rejected: Go's atomic reader counter, where `RLock` is one atomic add and
// a writer subtracts a large bias to announce itself. Go's waits cannot be
// abandoned; here a cancelled reader would have to undo its add after the
// writer already counted on it (readerWait), and the undo races with the
// writer's own wake-up. One short SpinLock section per lock and unlock keeps
// cancellation exact; a read-mostly caller pays one uncontended SpinLock
// pair per read.
//
// Rejected: a GreenMutex plus a GreenCondition (the textbook monitor). Every
// release would broadcast and every waiter re-check, a thundering herd on a
// writer's unlock; the hand-over wakes exactly the threads that get in.
//
// ## Memory ordering
//
// | operation                          | ordering  | pairs with                                 |
// |------------------------------------|-----------|--------------------------------------------|
// | state under `lock`                 | acq/rel   | the SpinLock's exchange / releasing store  |
// | hand-over to a queued waiter       | (resume)  | the waiter's resume (fiber run-state CAS   |
// |                                    |           | or futex word): release → acquire          |
//
// The previous holder's writes reach the next one either through the
// SpinLock (a fast-path entry after the release) or through the resume.

/// A readers-writer lock for green threads: many readers at once, or one
/// writer (Go's `sync.RWMutex`, POSIX's `pthread_rwlock_t`).
///
/// ```swift
/// let routes = GreenRWLock()
/// let target = try routes.withReadLock { table[path] }   // readers share
/// try routes.withWriteLock { table[path] = newTarget }   // a writer is alone
/// ```
///
/// A waiting green thread parks (its worker runs others); a waiting OS
/// thread blocks. A waiting writer keeps new readers out, so a stream of
/// overlapping readers cannot starve it; a writer's unlock lets the readers
/// that queued behind it in before the next writer. Not recursive: a thread
/// that holds a read lock and asks for it again may deadlock behind a
/// queued writer (as in Go). Like `GreenMutex`, the lock has no owning
/// thread: it may be unlocked on another thread than the one that locked it.
public final class GreenRWLock: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every field is guarded by `lock`.

    private let lock = SpinLock()
    @exclusivity(unchecked) private var readers = 0                  // Guarded by: lock
    @exclusivity(unchecked) private var writing = false              // Guarded by: lock
    @exclusivity(unchecked) private var readWaiters = WaiterList()   // Guarded by: lock
    @exclusivity(unchecked) private var writeWaiters = WaiterList()  // Guarded by: lock

    /// Creates an unlocked lock.
    public init() {}

    // MARK: Readers

    /// Acquires the lock for reading, waiting while a writer holds it or
    /// waits for it.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread is
    ///   cancelled while waiting; the lock is then not held. A lock that can
    ///   be entered at once is entered even by a cancelled thread.
    public func readLock() throws {
        lock.lock()
        if !writing && writeWaiters.isEmpty {
            readers += 1
            lock.unlock()
            return
        }
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("GreenRWLock.readLock"),
                            enqueue: { readWaiters.append($0) }, unlink: { readWaiters.remove($0) })
        }
        // `.notified`: the releaser counted us in before resuming us.
        try cause.throwUnlessNotified()
    }

    /// Acquires the lock for reading if that needs no wait.
    public func tryReadLock() -> Bool {
        lock.withLock {
            guard !writing && writeWaiters.isEmpty else { return false }
            readers += 1
            return true
        }
    }

    /// Releases a read lock. Any thread may release it.
    /// - Precondition: some reader holds the lock.
    public func readUnlock() {
        lock.lock()
        guard readers > 0 else {
            let what = writing ? "it is write-locked" : "it is not locked"
            lock.unlock()
            // fatalError, not preconditionFailure: an optimized build
            // keeps its message, which names the misuse.
            fatalError("GreenThreads: readUnlock() of a GreenRWLock that no reader holds (\(what))")
        }
        readers -= 1
        let granted = readers == 0 ? grant(readersFirst: false) : Granted()
        lock.unlock()
        granted.resumeAll()
    }

    /// Runs `body` holding the lock for reading, and returns its result.
    /// - Throws: `CancellationError` if cancelled while waiting for the
    ///   lock (then `body` does not run), or what `body` throws.
    public func withReadLock<R>(_ body: () throws -> R) throws -> R {
        try readLock()
        defer { readUnlock() }
        return try body()
    }

    // MARK: Writers

    /// Acquires the lock for writing, waiting while readers or another
    /// writer hold it, and behind writers that queued earlier.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread is
    ///   cancelled while waiting; the lock is then not held, and readers it
    ///   was keeping out are let in.
    public func writeLock() throws {
        lock.lock()
        // A free lock has no live waiter: every release hands it straight
        // to one (see the file header).
        if !writing && readers == 0 {
            writing = true
            lock.unlock()
            return
        }
        var granted = Granted()
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("GreenRWLock.writeLock"),
                            enqueue: { writeWaiters.append($0) },
                            unlink: { me in
                                // Under `lock`: we may have been what kept
                                // the queued readers out.
                                writeWaiters.remove(me)
                                granted = grant(readersFirst: false)
                            })
        }
        granted.resumeAll()
        try cause.throwUnlessNotified()
    }

    /// Acquires the lock for writing if that needs no wait.
    public func tryWriteLock() -> Bool {
        lock.withLock {
            guard !writing && readers == 0 else { return false }
            writing = true
            return true
        }
    }

    /// Releases the write lock: the readers queued behind it get in first,
    /// else the next writer. Any thread may release it.
    /// - Precondition: a writer holds the lock.
    public func writeUnlock() {
        lock.lock()
        guard writing else {
            let what = readers > 0 ? "it is read-locked" : "it is not locked"
            lock.unlock()
            fatalError("GreenThreads: writeUnlock() of a GreenRWLock that no writer holds (\(what))")
        }
        writing = false
        let granted = grant(readersFirst: true)
        lock.unlock()
        granted.resumeAll()
    }

    /// Runs `body` holding the lock for writing, and returns its result.
    /// - Throws: `CancellationError` if cancelled while waiting for the
    ///   lock (then `body` does not run), or what `body` throws.
    public func withWriteLock<R>(_ body: () throws -> R) throws -> R {
        try writeLock()
        defer { writeUnlock() }
        return try body()
    }

    // MARK: Hand-over

    /// Under `lock`, after a release or a writer's withdrawal: claims the
    /// waiters the policy lets in now and counts them as holders. The caller
    /// resumes them once `lock` is released.
    private func grant(readersFirst: Bool) -> Granted {
        var granted = Granted()
        if writing { return granted }
        if readersFirst {
            granted.claimAll(&readWaiters)
            readers += granted.count
            if granted.count > 0 { return granted }
        }
        if readers == 0, let w = writeWaiters.popClaimed() {
            writing = true
            granted.add(w)
            return granted
        }
        // No writer takes it: the readers that queued only because of a
        // writer in the queue may come in.
        if writeWaiters.isEmpty {
            granted.claimAll(&readWaiters)
            readers += granted.count
        }
        return granted
    }

    // MARK: For tests

    /// Queued waiters, live or dead: readers, writers.
    var waiterCounts: (readers: Int, writers: Int) {
        lock.withLock { (readWaiters.count, writeWaiters.count) }
    }

    /// Holders right now: active readers, and whether a writer holds it.
    var holders: (readers: Int, writing: Bool) {
        lock.withLock { (readers, writing) }
    }
}

/// Waiters claimed under the lock's SpinLock, to be resumed after it is
/// released; counted, because each reader claimed is a reader counted in.
/// Chained through `Waiter.next`, which dequeuing freed (as in WaiterList's
/// `ClaimedWaiters`).
private struct Granted {
    private var first: WaiterRef?
    private(set) var count = 0

    mutating func add(_ waiter: WaiterRef) {
        waiter.pointee.next = first
        first = waiter
        count += 1
    }

    mutating func claimAll(_ list: inout WaiterList) {
        while let w = list.popClaimed() { add(w) }
    }

    /// Resumes every claimed waiter; call it once, with no SpinLock held.
    func resumeAll() {
        var next = first
        while let w = next {
            // Read before the resume: from its first instruction the waiter
            // is its thread's again.
            next = w.pointee.next
            w.pointee.next = nil
            w.resume()
        }
    }
}
