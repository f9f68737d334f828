/// A one-shot timer whose firing is a value on a channel, like Go's
/// `time.Timer` (with Go 1.23's guarantee: no stale value after `stop` or
/// `reset`).
///
/// ```swift
/// let timer = GreenTimer(after: .milliseconds(200))
/// let reply = try select {
///     Case.receive(replies) { r in r }
///     Case.receive(timer.channel) { _ in nil }   // gave up
/// }
/// timer.stop()
/// ```
///
/// Usable from green threads and plain OS threads alike. A timer created
/// on a green thread runs on its runtime's timer heaps and clock (virtual
/// time included); one created elsewhere, on the process's timer thread.
/// It runs until it fires or is stopped, whether or not the `GreenTimer`
/// object is still referenced.
public final class GreenTimer: Sendable {
    /// Receives the instant the timer fired, once per arming; never closed.
    /// Its one-value buffer behaves as if unbuffered to whoever stops or
    /// resets the timer: after `stop()` or `reset(after:)` returns, nothing
    /// from before the call is received.
    public let channel: Channel<ContinuousClock.Instant>
    let timer: ChannelTimer

    /// Starts a timer that fires once, `duration` from now; at once (its
    /// value already in `channel`) if `duration` is zero or negative.
    public init(after duration: Duration) {
        timer = ChannelTimer(after: duration, period: 0)
        channel = timer.channel
    }

    /// Stops the timer and discards a value it sent that nobody received.
    ///
    /// - Returns: true if this call kept a value from being received (the
    ///   timer had not fired, or had fired into the buffer unread); false
    ///   if the value was already received or the timer already stopped.
    @discardableResult
    public func stop() -> Bool {
        timer.stop()
    }

    /// Stops the timer as `stop()` does, then arms it to fire once,
    /// `duration` from now (at once if not positive).
    ///
    /// - Returns: what `stop()` would have returned: true if the timer was
    ///   still pending (a value not yet received was discarded).
    @discardableResult
    public func reset(after duration: Duration) -> Bool {
        timer.reset(after: duration)
    }
}
