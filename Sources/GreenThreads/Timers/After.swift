/// A channel that receives the current instant once, `duration` from now:
/// Go's `time.After`. The channel holds its value until it is received.
///
/// ```swift
/// try select {
///     Case.receive(results) { r in use(r) }
///     Case.receive(after(.seconds(1))) { _ in giveUp() }
/// }
/// ```
///
/// The timer behind it cannot be stopped: until it fires it stays pending
/// (a heap entry and a channel). In a loop, or for a long duration, prefer
/// a `GreenTimer` and its `stop()`, or a select's `Case.timeout`.
/// A zero or negative `duration` returns a channel that already holds its
/// value.
public func after(_ duration: Duration) -> Channel<ContinuousClock.Instant> {
    // The heap's entry keeps the timer, and with it the channel, alive
    // until it fires.
    ChannelTimer(after: duration, period: 0).channel
}
