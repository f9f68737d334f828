// SelectOperation.swift: a select's channel cases, type-erased for the
// select loop (Select.swift), which runs unspecialized.
//
// An operation is three words and a flag: the channel (unretained: the
// select's clauses hold it), the metatype of an element-typed subclass of
// `ChannelCaseKind` (one word, no allocation, no reference count) through
// which the loop reaches the channel's element-typed calls, and, for a
// send, the address of its value. Values move only through typed pointers
// at the two ends, never as an `Element?` or another generic type built in
// the unspecialized loop (see Channel.swift, "Specialization").

/// A channel case of one select call, type-erased for the select loop.
/// Used only by the selecting thread, except for its waiter, which follows
/// the hand-over protocol in Waiter.swift.
@usableFromInline
struct SelectOperation {
    /// The `Channel<Element>` that `kind` knows the type of.
    @usableFromInline let channel: UnsafeRawPointer
    @usableFromInline let kind: ChannelCaseKind.Type
    /// A send's value; nil for a receive, which uses the select's slot.
    @usableFromInline let sendAddress: UnsafeMutableRawPointer?
    /// Set by the loop on the operation that happened: its channel was
    /// closed, so nothing moved.
    @usableFromInline var closed = false

    /// What a case that is not a channel case holds; never used. (Not an
    /// optional `operation`: measured, that made the optimizer copy every
    /// case in the builder, through value witnesses.)
    @inlinable
    init() {
        channel = UnsafeRawPointer(bitPattern: 1).unsafelyUnwrapped
        kind = ChannelCaseKind.self
        sendAddress = nil
    }

    @inlinable
    init(channel: UnsafeRawPointer, kind: ChannelCaseKind.Type, sendAddress: UnsafeMutableRawPointer?) {
        self.channel = channel
        self.kind = kind
        self.sendAddress = sendAddress
    }

    /// Queues `waiter` (fresh, on the select's stack) for `waker`, under
    /// the channel's lock, which the select holds. A receive's counterpart
    /// will write the value into `slot`.
    func enqueueHeld(_ waiter: WaiterRef, _ slot: UnsafeMutableRawPointer, _ waker: UnownedWaker) {
        waiter.pointee.elem = sendAddress ?? slot
        kind.enqueueHeld(channel, waiter, waker)
    }

    /// Unlinks `waiter` if it is still queued.
    func unregister(_ waiter: WaiterRef) { kind.unregister(channel, waiter) }

    /// After a wait in which a counterpart completed this case (or closed
    /// its channel): records the outcome for the body.
    mutating func collect(_ waiter: WaiterRef) { closed = waiter.pointee.outcome == .closed }
}

/// How a poll went, for any element type.
@usableFromInline
enum SelectAttempt { case done, closed, wouldBlock }

/// The element-typed channel calls of a select case, reached through the
/// metatype of a subclass (one word, no allocation, no reference count).
/// The channel code they call runs unspecialized, as it did before.
@usableFromInline
class ChannelCaseKind {
    /// `Channel.enqueueHeld` on this kind's queue.
    class func enqueueHeld(_ channel: UnsafeRawPointer, _ waiter: WaiterRef, _ waker: UnownedWaker) {
        fatalError("subclass responsibility")
    }
    /// Releases the channel's lock, which a select took (through its
    /// specialized clauses) for its one-instant poll and holds while it
    /// queues its waiters.
    class func unlock(_ channel: UnsafeRawPointer) {
        fatalError("subclass responsibility")
    }
    /// `Channel.unregister` from this kind's queue.
    class func unregister(_ channel: UnsafeRawPointer, _ waiter: WaiterRef) {
        fatalError("subclass responsibility")
    }
}

/// The channel calls of a case on a `Channel<Element>`; the subclass says
/// which of its queues the case waits in.
@usableFromInline
class ChannelKind<Element: Sendable>: ChannelCaseKind {
    /// The queue this kind's waiters join.
    class var queue: Channel<Element>.Queue { fatalError("subclass responsibility") }

    @inline(__always)
    private static func channel(_ p: UnsafeRawPointer) -> Unmanaged<Channel<Element>> {
        Unmanaged.fromOpaque(p)
    }

    override class func enqueueHeld(_ channel: UnsafeRawPointer, _ waiter: WaiterRef, _ waker: UnownedWaker) {
        let queue = self.queue
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.enqueueHeld(waiter, in: queue, waker: waker) }
    }

    override class func unlock(_ channel: UnsafeRawPointer) {
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.lock.unlock() }
    }

    override class func unregister(_ channel: UnsafeRawPointer, _ waiter: WaiterRef) {
        let queue = self.queue
        Self.channel(channel)._withUnsafeGuaranteedRef { $0.unregister(waiter, from: queue) }
    }
}

/// A receive case's channel calls. The value ends up in the select's
/// shared slot: moved there by a poll, or written there by a sender while
/// the select is parked.
@usableFromInline
final class ReceiveKind<Element: Sendable>: ChannelKind<Element> {
    override class var queue: Channel<Element>.Queue { .receivers }
}

/// A send case's channel calls. The value stays in the select's copy of it
/// (see SelectClauses.swift); a receiver copies it from there.
@usableFromInline
final class SendKind<Element: Sendable>: ChannelKind<Element> {
    override class var queue: Channel<Element>.Queue { .senders }
}
