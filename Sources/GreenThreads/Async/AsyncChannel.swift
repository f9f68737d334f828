// AsyncChannel.swift: a channel's send and receive for async code.
//
// The Task suspends instead of parking a thread: the operation queues an
// `AsyncWaitTarget`'s waiter in the channel's ordinary queues, and green
// threads, OS threads, selects and `close` serve it through the code that
// serves everyone else (AsyncWaitTarget.swift). A Task's waiter keeps its
// place in the first-come first-served order of the queue.
//
// A value that needs no waiting moves before any allocation, as the
// synchronous operations do. The rest is out of line and unspecialized; a
// suspension of a Task costs more than the generic moves.

extension Channel {
    /// Sends `value` from async code, suspending the Task (never blocking a
    /// thread) while the buffer is full or, unbuffered, until a receiver
    /// takes it.
    ///
    /// - Throws: `ChannelError.closed` if the channel is closed before the
    ///   value is delivered; `CancellationError` if the Task is cancelled
    ///   while it waits. In both cases the value was not sent. A send that
    ///   needs no waiting completes even in a cancelled Task.
    public func send(_ value: Element) async throws {
        switch withUnsafePointer(to: value, { pollSend(from: $0) }) {
        case .done: return
        case .closed: throw ChannelError.closed
        case .wouldBlock: break
        }
        let slot = UnsafeMutablePointer<Element>.allocate(capacity: 1)
        slot.initialize(to: value)
        defer {
            slot.deinitialize(count: 1)
            slot.deallocate()
        }
        let target = AsyncWaitTarget()
        var attempt = Attempt.wouldBlock
        let cause = await Park.waitAsync(target, register: { waiter, waker in
            lock.lock()
            let step = sendStep(UnsafePointer(slot))
            guard case .wouldBlock = step else {
                attempt = unlock(after: step)
                return false
            }
            // The value stays in `slot` until a receiver has copied it.
            waiter.pointee.elem = UnsafeMutableRawPointer(slot)
            enqueueHeld(waiter, in: .senders, waker: waker)
            lock.unlock()
            return true
        }, unlink: { unregister($0, from: .senders) })
        switch cause {
        case nil:
            if attempt == .closed { throw ChannelError.closed }
        case .notified:
            if target.waiter.pointee.outcome == .closed { throw ChannelError.closed }
        case .timedOut, .cancelled, .deadlock:
            throw CancellationError()
        case .deadlineExceeded:
            // Scopes bound threads, not Tasks: not reached, kept exhaustive.
            throw DeadlineExceeded()
        }
    }

    /// Receives the next value from async code, suspending the Task (never
    /// blocking a thread) while there is none.
    ///
    /// - Returns: the value, or nil once the channel is closed and drained.
    /// - Throws: `CancellationError` if the Task is cancelled while it
    ///   waits; no value was taken then. A value already available is
    ///   returned even to a cancelled Task, and so is one that a sender
    ///   handed over as the cancellation came.
    public func receive() async throws -> Element? {
        try await receive(reusing: nil)
    }

    /// `receive()` with the target of an earlier wait of the same caller
    /// (`values` keeps one per iterator), or a fresh one if nil.
    func receive(reusing reused: AsyncWaitTarget?) async throws -> Element? {
        let (now, value) = withUnsafeTemporaryAllocation(of: Element.self, capacity: 1) { buffer in
            let slot = buffer.baseAddress.unsafelyUnwrapped
            let a = pollReceive(into: slot)
            return (a, a == .done ? slot.move() : nil)
        }
        switch now {
        case .done: return value
        case .closed: return nil
        case .wouldBlock: break
        }
        let slot = UnsafeMutablePointer<Element>.allocate(capacity: 1)
        defer { slot.deallocate() }
        let target = reused ?? AsyncWaitTarget()
        var attempt = Attempt.wouldBlock
        let cause = await Park.waitAsync(target, register: { waiter, waker in
            lock.lock()
            let step = receiveStep(into: slot)
            guard case .wouldBlock = step else {
                attempt = unlock(after: step)
                return false
            }
            // A sender initializes `slot` after claiming the waiter.
            waiter.pointee.elem = UnsafeMutableRawPointer(slot)
            enqueueHeld(waiter, in: .receivers, waker: waker)
            lock.unlock()
            return true
        }, unlink: { unregister($0, from: .receivers) })
        switch cause {
        case nil:
            return attempt == .done ? slot.move() : nil
        case .notified:
            return target.waiter.pointee.outcome == .completed ? slot.move() : nil
        case .timedOut, .cancelled, .deadlock:
            throw CancellationError()
        case .deadlineExceeded:
            // Scopes bound threads, not Tasks: not reached, kept exhaustive.
            throw DeadlineExceeded()
        }
    }
}
