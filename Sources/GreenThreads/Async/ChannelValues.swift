// ChannelValues.swift: a channel as an AsyncSequence, for `for await`.

extension Channel {
    /// The channel's values as an `AsyncSequence`, for async code:
    ///
    /// ```swift
    /// for await line in lines.values { await store(line) }
    /// ```
    ///
    /// Iterating receives: each value reaches exactly one receiver, whether
    /// it iterates `values`, calls `receive`, or is a green thread. The
    /// sequence ends once the channel is closed and drained, or when the
    /// iterating Task is cancelled while it waits (it does not throw; a
    /// value that arrived before the cancellation is still returned).
    public var values: Values { Values(channel: self) }

    /// The AsyncSequence of `Channel.values`.
    public struct Values: AsyncSequence, Sendable {
        public typealias Failure = Never

        let channel: Channel<Element>

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(channel: channel)
        }

        /// Receives from the channel; see `Channel.values`.
        public struct AsyncIterator: AsyncIteratorProtocol {
            let channel: Channel<Element>
            /// One target for every wait of this iterator, made at the
            /// first one (AsyncWaitTarget.swift, `rearm`).
            var target: AsyncWaitTarget?
            var finished = false

            init(channel: Channel<Element>) {
                self.channel = channel
            }

            public mutating func next() async -> Element? {
                if finished { return nil }
                if target == nil { target = AsyncWaitTarget() }
                if let value = try? await channel.receive(reusing: target) { return value }
                finished = true
                return nil
            }
        }
    }
}
