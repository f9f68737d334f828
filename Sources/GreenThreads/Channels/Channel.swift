// Channel.swift: Go channels for green threads (and plain OS threads).
//
// A channel is a lock, an optional ring buffer and two queues of parked
// operations: `receivers` (waiting for a value) and `senders` (waiting to
// hand one over). As in Go's runtime/chan.go, a value goes straight from a
// sender to a parked receiver (or from a parked sender to a receiver)
// without a trip through the buffer.
//
// ## Invariants
//
// "Live" waiter: one whose `Waker` could still be claimed. Dead waiters
// (cancelled, timed out, or a select that took another case) may linger in
// either queue until someone unlinks them; they are skipped with one failed
// CAS and never receive or give a value. Counting only live waiters:
//
//  * At least one of `senders` and `receivers` is empty, except when one
//    select waits to both send and receive on the same unbuffered channel;
//    then both queues hold only that select's waiters (it cannot rendezvous
//    with itself).
//  * For buffered channels, also:
//      `ring.count > 0` implies `receivers` is empty;
//      `ring.count < capacity` implies `senders` is empty.
//  * Once `closed` is set, both queues are empty and stay empty: close wakes
//    everyone, and nobody parks on a closed channel. The buffer still drains.
//  * A waiter is claimed only while being dequeued under `lock`, and the
//    claimer writes its result before resuming it (see Waiter.swift).
//  * A queued sender's `elem` points at its initialized value; a queued
//    receiver's at an uninitialized slot. A value is copied out of a
//    sender's `elem` (the sender still owns and destroys its own), and
//    initialized into a receiver's exactly once, by the claimer.
//
// ## Specialization
//
// Everything that completes without waiting (`sendLocked`,
// `receiveLocked`: the buffer, a hand-over to or from a parked
// counterpart, a closed channel) is `@inlinable`, and the public calls run
// it in the caller, specialized for `Element`: a buffered `Int` moves with
// plain loads and stores. Unspecialized, every move of a value would be a
// value witness call and a generic `moveInitialize` (a `memmove`): two
// thirds of the instructions of a message on gt-bench `chan` at one
// worker. Only waiting (`parkSend`, `parkReceive`) is out of line,
// in the unspecialized core, which moves values through typed pointers
// only: it never builds an `Element?` or any other generic type around
// `Element`, each of which would cost a metadata lookup per call (see
// Waiter.swift). A select's polls (Select.swift) run the same inlinable
// code unspecialized.
//
// ## Locking
//
// One SpinLock per channel guards everything. It is never held across a
// switch: a parking operation queues its waiter and releases the lock inside
// Park's register step, before the green thread switches away, and
// waiters are resumed only after the lock is released (a resume may wake a
// sleeping worker through a futex). Only a select holds several channel
// locks at once, always in address order (see Select.swift); every other
// operation holds one, so no cycle of waits can form.
//
// ## Readiness without the lock
//
// `readiness` summarizes, for readers that take no lock, whether each
// direction could complete now: bit 0, a receive (a buffered value, a
// parked sender, or closed); bit 1, a send (room in the buffer, a parked
// receiver, or closed); the bits above count the changes of those two.
// It is written only under `lock`, by `publishReadiness`, after every
// change of the state it summarizes (a step that moved a value, queueing
// or unlinking a waiter, close) and before the lock is released. A bit is
// set whenever its direction is ready; it may stay set while it is not (a
// dead waiter still queued), never the reverse. So one load that finds a
// bit clear is a moment at which that direction was not ready: a
// non-blocking poll (`tryReceive`, `trySend`, a select's one-case polls)
// that finds it clear fails without the lock, as Go's `empty(c)` check
// does. A select with a default case that finds every bit of its cases
// clear in two passes, with every word unchanged between them, has seen
// one instant at which none was ready (Select.swift, "Default without
// locks").
//
// Ordering: `publishReadiness` stores with sequential consistency and the
// readers load with it, so all the words of all channels sit in one total
// order with the readers' loads: the argument of the double collect is the
// textbook one. The store happens only when a bit flips, under the lock
// the flipping operation already holds.
//
// ## Cache lines
//
// The object header's reference count is written by every select that
// names the channel (a case retains it: SelectClauses.swift), and the lock
// and ring by every send and receive. In a fan-in at two workers the
// consumer's select retains all its channels per message while producers on
// the other core send on them: with the lock and ring on the count's cache
// line, each retain is a cross-core miss, one per case instead of one per
// message. So the fields run, from the header: the read-mostly ones
// (`capacity`, `readiness`, which changes only when a bit flips), padding,
// then what every operation writes (`lock`, `ring`, `closed`) and the
// queues beside it, at least 64 bytes past the count whatever the object's
// alignment (a heap object is only 16-byte aligned). Swift lays a final
// class's stored properties out in declaration order.
//
// ## Cancellation
//
// Every wait is interruptible: a green thread cancelled while parked in
// `send` or `receive`, or a cancel or deadline scope around it that trips
// (Deadline.swift), throws `CancellationError` or `DeadlineExceeded`, and
// nothing moved (its value was not sent; no value was taken). A receive
// never reports an interruption as nil, which means closed and drained. A
// value and an interruption that arrive together are arbitrated by the
// waiter's claim (Waiter.swift): a sender that won it has already written
// its value, and the receiver returns it; one that lost it finds the waiter
// dead and skips it, keeping its value. Operations that need not wait
// complete even when the thread is already cancelled, as in Go.

import Synchronization

/// The error a send on a closed channel throws.
public enum ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The channel was closed before the value could be sent.
    case closed

    public var description: String {
        switch self {
        case .closed: return "send on a closed channel"
        }
    }
}

/// A typed conduit between green threads, like Go's `chan Element`.
///
/// ```swift
/// let ch = Channel<Int>(capacity: 0)     // unbuffered: send waits for a receiver
/// go { for i in 0..<3 { try ch.send(i) }; ch.close() }
/// for x in ch { print(x) }               // 0 1 2, then the loop ends
/// ```
///
/// Every operation may be called from any thread: a green thread that has
/// to wait parks (its worker runs other green threads), a plain OS thread
/// blocks. Values are delivered in FIFO order per sender, and parked
/// senders and receivers are served first-come first-served.
///
/// - Note: A channel belongs to no runtime, so a plain OS thread blocked on
///   one is invisible to a runtime's deadlock detection: it neither counts
///   as a waiter that a deadlock report would wake, nor keeps the runtime
///   from reporting one while it blocks.
public final class Channel<Element: Sendable>: Sequence, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every mutable field is guarded by `lock`
    // (or is a waiter handed over by the protocol in Waiter.swift); elements
    // are Sendable. @exclusivity(unchecked): the lock already serializes
    // every access, so the dynamic check would be pure overhead.

    // The order of these fields is the layout: see "Cache lines" above.

    /// Maximum buffered elements; 0 for an unbuffered (rendezvous) channel.
    public let capacity: Int
    /// See "Readiness without the lock" in the file header. Written under
    /// `lock`; read by anyone.
    @usableFromInline let readiness: Atomic<UInt>
    /// Keeps `lock` 64 bytes past the reference count (offset 8): header 16,
    /// `capacity` and `readiness` 16, these 40.
    private let separation: (UInt, UInt, UInt, UInt, UInt) = (0, 0, 0, 0, 0)
    @usableFromInline let lock = SpinLock()
    @usableFromInline @exclusivity(unchecked) var ring: Ring<Element>    // Guarded by: lock
    @usableFromInline @exclusivity(unchecked) var closed = false         // Guarded by: lock
    @usableFromInline @exclusivity(unchecked) var receivers = WaiterList()  // Guarded by: lock
    @usableFromInline @exclusivity(unchecked) var senders = WaiterList()    // Guarded by: lock

    /// Creates a channel buffering up to `capacity` elements.
    ///
    /// - Parameter capacity: 0 (the default) for an unbuffered channel, on
    ///   which `send` waits until a receiver takes the value.
    /// - Precondition: `capacity >= 0`.
    public init(capacity: Int = 0) {
        precondition(capacity >= 0,
                     "GreenThreads: Channel capacity must be 0 (unbuffered) or positive; got \(capacity)")
        self.capacity = capacity
        ring = Ring(capacity: capacity)
        readiness = Atomic(capacity > 0 ? Channel.sendReady : 0)
    }

    deinit {
        ring.destroy()
    }

    // MARK: Sending

    /// Sends `value`, waiting while the buffer is full (or, unbuffered,
    /// until a receiver takes it).
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `ChannelError.closed` if the channel is closed before the
    ///   value is delivered; `CancellationError` if the calling green thread
    ///   (or a cancel scope around the call) is cancelled while waiting;
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes
    ///   while waiting. In every case the value was not sent.
    @inlinable
    public func send(_ value: Element) throws {
        try withUnsafePointer(to: value) { value in
            lock.lock()
            switch sendLocked(value) {
            case .done: return
            case .closed: throw ChannelError.closed
            case .wouldBlock: try parkSend(from: value)  // still holding the lock
            }
        }
    }

    /// The waiting part of a send of the value at `value` (which stays the
    /// caller's). Called with `lock` held, after `sendLocked` found no room.
    @usableFromInline
    func parkSend(from value: UnsafePointer<Element>) throws {
        // Park offering `value` where it is: it stays on this thread's stack
        // until a receiver has copied it.
        let outcome = try Waiter.withTemporary { waiter in
            waiter.pointee.elem = UnsafeMutableRawPointer(mutating: value)
            return try parkLocked(waiter, in: .senders, reason: .send)
        }
        if outcome == .closed { throw ChannelError.closed }
    }

    /// Sends `value` if that needs no waiting: a receiver is parked, or the
    /// buffer has room.
    ///
    /// - Returns: whether the value was sent; false when the channel is full
    ///   or closed (`isClosed` tells which).
    @inlinable
    public func trySend(_ value: Element) -> Bool {
        withUnsafePointer(to: value) { pollSend(from: $0) == .done }
    }

    /// How an attempt that may not wait went.
    @usableFromInline
    enum Attempt: UInt8 {
        case done        // the value moved
        case closed      // the channel is closed (and, receiving, drained)
        case wouldBlock  // it would have to wait
    }

    /// A send that does not wait (a select's poll, `trySend`).
    @inlinable
    func pollSend(from value: UnsafePointer<Element>) -> Attempt {
        if !mayBeReady(Channel.sendReady) { return .wouldBlock }
        lock.lock()
        let a = sendLocked(value)
        if a == .wouldBlock { lock.unlock() }
        return a
    }

    /// The non-waiting part of a send. Called with `lock` held; releases it
    /// unless the send would block.
    @inlinable @inline(__always)
    func sendLocked(_ value: UnsafePointer<Element>) -> Attempt {
        unlock(after: sendStep(value))
    }

    /// What one step of an operation under `lock` found.
    @usableFromInline
    enum Step {
        case done                // the value moved through the buffer
        case handOff(WaiterRef)  // a parked counterpart was claimed and given its
                                 // result; it must be resumed after unlocking
        case closed
        case wouldBlock
    }

    /// A send's decision, made under `lock`, which it never releases (a
    /// select holding every channel of its cases calls it too). A parked
    /// receiver is claimed and given the value here (see Waiter.swift:
    /// claim, write, resume); the caller resumes it after unlocking.
    @inlinable @inline(__always)
    func sendStep(_ value: UnsafePointer<Element>) -> Step {
        if closed { return .closed }
        // A parked receiver means an empty buffer (invariant): the value
        // goes straight to it. The claim made the waiter ours alone.
        if let receiver = receivers.popClaimed() {
            receiver.pointee.elem.unsafelyUnwrapped.assumingMemoryBound(to: Element.self).initialize(to: value.pointee)
            receiver.pointee.outcome = .completed
            publishReadiness()
            return .handOff(receiver)
        }
        if ring.count < capacity {
            ring.append(value.pointee)
            // Only the first value in (receive turns ready) and the last
            // slot filled (send turns not ready) can flip a bit.
            if ring.count == 1 || ring.count == capacity { publishReadiness() }
            return .done
        }
        return .wouldBlock
    }

    /// Ends a plain operation's step: releases `lock` unless the operation
    /// would block, then resumes the counterpart the step claimed (never
    /// under the lock: a resume may wake a sleeping worker through a futex).
    @inlinable @inline(__always)
    func unlock(after step: Step) -> Attempt {
        switch step {
        case .handOff(let counterpart):
            lock.unlock()
            counterpart.resume()
            return .done
        case .done:
            lock.unlock()
            return .done
        case .closed:
            lock.unlock()
            return .closed
        case .wouldBlock:
            return .wouldBlock
        }
    }

    // MARK: Receiving

    /// Receives the next value, waiting while there is none.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Returns: the value, or nil once the channel is closed and drained
    ///   (only then).
    /// - Throws: `CancellationError` if the calling green thread (or a
    ///   cancel scope around the call) is cancelled while waiting;
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes
    ///   while waiting. No value was taken then. A value already available
    ///   is returned even to a cancelled thread.
    @inlinable
    public func receive() throws -> Element? {
        try withUnsafeTemporaryAllocation(of: Element.self, capacity: 1) { buffer in
            let slot = buffer.baseAddress.unsafelyUnwrapped
            lock.lock()
            switch receiveLocked(into: slot) {
            case .done: return slot.move()
            case .closed: return nil
            case .wouldBlock: return try parkReceive(into: slot) ? slot.move() : nil  // still holding the lock
            }
        }
    }

    /// The former name of the throwing `receive()`.
    @available(*, deprecated, renamed: "receive()")
    @inlinable
    public func receiveOrThrow() throws -> Element? {
        try receive()
    }

    /// Receives a value if one is ready: buffered, or offered by a parked
    /// sender. Returns nil if none is (the channel is empty, or closed and
    /// drained).
    @inlinable
    public func tryReceive() -> Element? {
        withUnsafeTemporaryAllocation(of: Element.self, capacity: 1) { buffer in
            let slot = buffer.baseAddress.unsafelyUnwrapped
            return pollReceive(into: slot) == .done ? slot.move() : nil
        }
    }

    /// The waiting part of a receive into `slot` (uninitialized). Called
    /// with `lock` held, after `receiveLocked` found nothing. Returns true
    /// if `slot` now holds a value, false if the channel was closed.
    @usableFromInline
    func parkReceive(into slot: UnsafeMutablePointer<Element>) throws -> Bool {
        let outcome = try Waiter.withTemporary { waiter in
            waiter.pointee.elem = UnsafeMutableRawPointer(slot)
            return try parkLocked(waiter, in: .receivers, reason: .receive)
        }
        return outcome == .completed
    }

    /// A receive that does not wait (a select's poll, `tryReceive`).
    @inlinable
    func pollReceive(into slot: UnsafeMutablePointer<Element>) -> Attempt {
        if !mayBeReady(Channel.receiveReady) { return .wouldBlock }
        lock.lock()
        let a = receiveLocked(into: slot)
        if a == .wouldBlock { lock.unlock() }
        return a
    }

    /// The non-waiting part of a receive. Called with `lock` held; releases
    /// it unless the receive would block.
    @inlinable @inline(__always)
    func receiveLocked(into slot: UnsafeMutablePointer<Element>) -> Attempt {
        unlock(after: receiveStep(into: slot))
    }

    /// A receive's decision, made under `lock`, which it never releases. On
    /// `.handOff` the value is already in `slot`, and the claimed sender,
    /// its value copied and its outcome written, must be resumed after
    /// unlocking.
    @inlinable @inline(__always)
    func receiveStep(into slot: UnsafeMutablePointer<Element>) -> Step {
        if let sender = senders.popClaimed() {
            // A parked sender means a full buffer (invariant). Take the
            // oldest buffered value and put the sender's at the tail, so
            // FIFO order holds; unbuffered, take the sender's directly.
            let offered = UnsafePointer(sender.pointee.elem.unsafelyUnwrapped.assumingMemoryBound(to: Element.self))
            if ring.count > 0 {
                ring.removeFirst(into: slot)
                ring.append(offered.pointee)
            } else {
                slot.initialize(to: offered.pointee)
            }
            sender.pointee.outcome = .completed
            publishReadiness()
            return .handOff(sender)
        }
        if ring.count > 0 {
            ring.removeFirst(into: slot)
            // Only the last value out and the first slot freed can flip a bit.
            if ring.count == 0 || ring.count == capacity - 1 { publishReadiness() }
            return .done
        }
        if closed { return .closed }
        return .wouldBlock
    }

    // MARK: Readiness

    /// `readiness` bits: see the file header.
    @usableFromInline static var receiveReady: UInt { 1 }
    @usableFromInline static var sendReady: UInt { 2 }
    @usableFromInline static var readinessBits: UInt { 3 }

    /// Brings `readiness` up to date with the state. Under `lock`, after
    /// a change and before the lock is released. Out of line: the steps
    /// call it only where a bit may flip, and inlined it would push `send`
    /// and `receive` over the inliner's budget in the caller.
    @usableFromInline @inline(never)
    func publishReadiness() {
        var bits: UInt = 0
        if closed || ring.count > 0 || !senders.isEmpty { bits |= Channel.receiveReady }
        if closed || ring.count < capacity || !receivers.isEmpty { bits |= Channel.sendReady }
        // relaxed: only lock holders write, and the lock ordered us after
        // the last of them.
        let old = readiness.load(ordering: .relaxed)
        if old & Channel.readinessBits != bits {
            // sequentiallyConsistent: pairs with the load in
            // `readinessWord` (file header).
            readiness.store((old &+ 4) & ~Channel.readinessBits | bits, ordering: .sequentiallyConsistent)
        }
    }

    /// Whether a direction (`receiveReady` or `sendReady`) might be
    /// ready; false means it was not, at the moment of the load.
    @inlinable @inline(__always)
    func mayBeReady(_ direction: UInt) -> Bool {
        readinessWord() & direction != 0
    }

    /// The readiness word, for the select's double collect.
    @inlinable @inline(__always)
    func readinessWord() -> UInt {
        // sequentiallyConsistent: pairs with the store in `publishReadiness`.
        readiness.load(ordering: .sequentiallyConsistent)
    }

    // MARK: Closing

    /// Closes the channel: no more values can be sent. Idempotent.
    ///
    /// Buffered values can still be received; after them, `receive` returns
    /// nil at once. Parked receivers wake with nil; parked senders throw
    /// `ChannelError.closed` (their values were not sent).
    public func close() {
        lock.lock()
        if closed {
            lock.unlock()
            return
        }
        closed = true
        // Everyone parked wakes with nothing moved: claimed under the lock,
        // resumed after it.
        var woken = receivers.claimAll(outcome: .closed)
        senders.claimAll(outcome: .closed, into: &woken)
        publishReadiness()
        lock.unlock()
        woken.resumeAll()
    }

    /// Whether `close` has been called.
    public var isClosed: Bool {
        lock.withLock { closed }
    }

    /// The number of buffered elements (Go's `len(ch)`). A snapshot: other
    /// threads may change it at any moment.
    public var count: Int {
        lock.withLock { ring.count }
    }

    /// Queued waiters, live or dead (for tests: a finished select must
    /// leave none behind).
    var waiterCount: Int {
        lock.withLock { receivers.count + senders.count }
    }

    // MARK: Parking

    enum Queue { case senders, receivers }

    /// Queues `waiter` and parks until a counterpart, `close`, cancellation
    /// or a scope's deadline ends the wait. Called with `lock` held; returns
    /// with it released and `waiter` unlinked. Returns the outcome a
    /// counterpart or `close` wrote.
    ///
    /// The lock is held from the failed attempt until the waiter is queued,
    /// so no sender or `close` can slip in between and leave us waiting for
    /// something that already happened (see WaiterList.swift).
    /// - Throws: `CancellationError` or `DeadlineExceeded` if the wait was
    ///   interrupted (then the waiter was never claimed: nothing moved).
    @inline(__always)
    private func parkLocked(_ waiter: WaiterRef, in queue: Queue, reason: WaitReason) throws -> Waiter.Outcome {
        let (cause, _) = Park.waitQueued(waiter, lock: lock, reason: reason,
                                         enqueue: { append($0, to: queue) },
                                         unlink: { remove($0, from: queue) })
        if cause == .notified { return waiter.pointee.outcome }
        try cause.throwIfInterrupted()
        throw CancellationError()  // .deadlock cannot reach a channel; .timedOut: no deadline
    }

    /// Queues `waiter` at the back of `queue`. Under `lock`.
    @inline(__always)
    private func append(_ waiter: WaiterRef, to queue: Queue) {
        switch queue {
        case .senders: senders.append(waiter)
        case .receivers: receivers.append(waiter)
        }
        publishReadiness()
    }

    /// Unlinks `waiter` from `queue` if it is still there. Under `lock`.
    @inline(__always)
    private func remove(_ waiter: WaiterRef, from queue: Queue) {
        switch queue {
        case .senders: senders.remove(waiter)
        case .receivers: receivers.remove(waiter)
        }
        publishReadiness()
    }

    // MARK: Select support

    /// Queues `waiter` (its `elem` already set) for `waker`. Called by a
    /// select that holds this channel's lock, and every other lock of its
    /// cases, and has just found none of them ready (see Select.swift).
    func enqueueHeld(_ waiter: WaiterRef, in queue: Queue, waker: UnownedWaker) {
        waiter.attach(waker)
        append(waiter, to: queue)
    }

    /// Unlinks a waiter if it is still queued.
    func unregister(_ waiter: WaiterRef, from queue: Queue) {
        lock.lock()
        remove(waiter, from: queue)
        lock.unlock()
    }

    // MARK: Sequence

    /// Iterates by receiving; ends when the channel is closed and drained.
    ///
    /// `next()` cannot throw, so a loop also ends, silently, when a wait is
    /// interrupted (the green thread or a cancel scope cancelled, a
    /// deadline passed). To know why a loop ended, iterate with
    /// `forEach(_:)`, which rethrows the interruption.
    public struct Iterator: IteratorProtocol {
        @usableFromInline let channel: Channel<Element>

        @inlinable init(channel: Channel<Element>) {
            self.channel = channel
        }

        @inlinable
        public mutating func next() -> Element? {
            try? channel.receive()
        }
    }

    /// An iterator that receives from this channel. Iterating consumes the
    /// values: two concurrent loops share them, each value reaching one.
    /// `for x in channel` ends when the channel is closed and drained, and
    /// also, silently, when a wait is interrupted: see `forEach(_:)`.
    @inlinable
    public func makeIterator() -> Iterator {
        Iterator(channel: self)
    }

    /// Receives every value until the channel is closed and drained,
    /// calling `body` with each: `for x in channel`, except that an
    /// interrupted wait is reported rather than ending the loop silently.
    ///
    /// ```swift
    /// try jobs.forEach { job in try handle(job) }   // returns once jobs is closed
    /// ```
    ///
    /// - Throws: `CancellationError` or `DeadlineExceeded` from a wait (see
    ///   `receive()`), or what `body` throws; then the loop stops.
    @inlinable
    public func forEach(_ body: (Element) throws -> Void) throws {
        while let x = try receive() { try body(x) }
    }
}

/// A fixed-capacity FIFO ring in raw memory (no copy-on-write checks).
/// Owned by one channel and used only under its lock.
@usableFromInline
struct Ring<Element> {
    @usableFromInline let storage: UnsafeMutablePointer<Element>?
    @usableFromInline let capacity: Int
    @usableFromInline var head = 0
    @usableFromInline var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        storage = capacity > 0 ? .allocate(capacity: capacity) : nil
    }

    @inlinable @inline(__always)
    mutating func append(_ element: Element) {
        let i = head + count
        // SAFETY: count < capacity (callers check), so the slot is
        // inside the allocation and uninitialized.
        storage.unsafelyUnwrapped.advanced(by: i >= capacity ? i - capacity : i).initialize(to: element)
        count += 1
    }

    /// Moves the oldest element into `slot` (uninitialized).
    @inlinable @inline(__always)
    mutating func removeFirst(into slot: UnsafeMutablePointer<Element>) {
        // SAFETY: count > 0 (callers check), so `head` is initialized.
        slot.moveInitialize(from: storage.unsafelyUnwrapped.advanced(by: head), count: 1)
        head += 1
        if head == capacity { head = 0 }
        count -= 1
    }

    /// Destroys the remaining elements and frees the storage.
    mutating func destroy() {
        while count > 0 {
            storage.unsafelyUnwrapped.advanced(by: head).deinitialize(count: 1)
            head += 1
            if head == capacity { head = 0 }
            count -= 1
        }
        storage?.deallocate()
    }
}
