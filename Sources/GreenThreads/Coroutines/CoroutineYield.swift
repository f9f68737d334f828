// The handle a coroutine body yields through: `try yield(x)` and
// `try yield.from(other)`.
import CContext

extension Coroutine {
    /// What a coroutine body yields with. `try yield(x)` suspends the body,
    /// hands `x` to whoever resumed it, and returns the value they send
    /// next; `try yield.from(other)` delegates to another coroutine.
    ///
    /// Valid only inside the body it was given to, on that body's stack.
    /// The handle holds raw pointers, not a reference to the coroutine, so
    /// that a suspended body does not keep its own coroutine alive.
    public struct Yield {
        // SAFETY: both point into the coroutine's frame, which outlives
        // every call made from its body (the body finishes, by unwinding if
        // need be, before the frame is freed). Calls from anywhere else are
        // refused before either is dereferenced beyond the control block.
        @usableFromInline let frame: UnsafeMutablePointer<Frame>
        @usableFromInline let control: UnsafeMutablePointer<CoroutineControl>

        @usableFromInline
        init(frame: UnsafeMutablePointer<Frame>, control: UnsafeMutablePointer<CoroutineControl>) {
            self.frame = frame
            self.control = control
        }

        /// Suspends the body and hands `value` to the caller of
        /// `start`/`send`/`throw`.
        ///
        /// - Returns: the value passed to the next `send(_:)`.
        /// - Throws: the error passed to `throw(_:)`; `CoroutineExit` when
        ///   the coroutine is closed or abandoned (let it propagate);
        ///   `CoroutineError.yieldAfterClose` when yielding after that;
        ///   `CoroutineError.yieldOutsideBody` when called outside the body.
        @discardableResult
        @inlinable @inline(__always)
        public func callAsFunction(_ value: Yielded) throws -> Sent {
            let c = control
            guard c.pointee.state == .running, CoroutineSwitch.isOnStack(c) else {
                throw CoroutineError.yieldOutsideBody
            }
            if c.pointee.exitDelivered {
                c.pointee.ignoredExit = true
                throw CoroutineError.yieldAfterClose
            }
            frame.pointee.yielded = value
            switch CoroutineSwitch.suspend(c) {
            case .proceed: return frame.pointee.sent.take().unsafelyUnwrapped
            case .raise: throw frame.pointee.error.take().unsafelyUnwrapped
            case .exit: throw CoroutineExit()
            }
        }

        /// Delegates to `other` until it returns (Python's `yield from`):
        /// its yields go out to our caller, values sent to us go in to it,
        /// errors thrown into us are thrown into it, and closing us closes it.
        ///
        /// - Parameter other: a coroutine that has not started yet.
        /// - Returns: `other`'s return value.
        /// - Throws: whatever `other` lets escape; `CoroutineExit` if we are
        ///   closed meanwhile; `CoroutineError.alreadyStarted` or `.closed`
        ///   if `other` is not fresh.
        public func from<R>(_ other: Coroutine<Sent, Yielded, R>) throws -> R {
            guard control.pointee.state == .running, CoroutineSwitch.isOnStack(control) else {
                throw CoroutineError.yieldOutsideBody
            }
            var step = try other.start()
            while true {
                switch step {
                case .returned(let r):
                    return r
                case .yielded(let y):
                    let sent: Sent
                    do {
                        sent = try self(y)
                    } catch {
                        // Being closed: close the delegate too (its defers
                        // run first, innermost out), then keep unwinding.
                        if error is CoroutineExit || control.pointee.exitDelivered {
                            try other.close()
                            throw error
                        }
                        step = try other.throw(error)
                        continue
                    }
                    step = try other.send(sent)
                }
            }
        }
    }
}

extension Coroutine.Yield where Sent == Void {
    /// Yields every element of `elements` in turn (Python's `yield from`
    /// over an iterable).
    public func from<S: Sequence>(_ elements: S) throws where S.Element == Yielded {
        for element in elements { try self(element) }
    }

    /// Delegates to a generator, passing `throw` and `close` through to it
    /// (a generator is also a `Sequence`; this overload keeps it a delegate
    /// rather than a plain iteration).
    public func from(_ generator: Generator<Yielded>) throws {
        let inner: Coroutine<Void, Yielded, Void> = generator
        try from(inner)
    }
}
