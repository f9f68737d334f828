/// Every live green thread, for the two moments that must see all of them:
/// a deadlock report (what is each one waiting for?) and shutdown (wake and
/// unwind each one, so no stack leaks).
///
/// Sharded by worker so that spawn and exit, which almost always happen on
/// one worker, take an uncontended lock.
final class Registry: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the shard arrays are immutable after init,
    // and each shard's list is guarded by that shard's lock.
    private final class Shard: @unchecked Sendable {
        // SAFETY: @unchecked Sendable: `head` (and the links of the fibers on
        // its list) are read and written only under `lock`.
        let lock = SpinLock()
        @exclusivity(unchecked) var head: Unmanaged<Fiber>?  // under `lock`
    }

    private let shards: [Shard]
    /// The same shards, unretained: spawn and exit reach theirs without a
    /// retain/release of an object every worker shares.
    private let fastShards: [Unmanaged<Shard>]

    init(shardCount: Int) {
        shards = (0..<shardCount).map { _ in Shard() }
        fastShards = shards.map { Unmanaged.passUnretained($0) }
    }

    func insert(_ fiber: Fiber, shard index: Int) {
        fastShards[index]._withUnsafeGuaranteedRef { insert(fiber, index: index, into: $0) }
    }

    private func insert(_ fiber: Fiber, index: Int, into shard: Shard) {
        fiber.registryShard = index
        let u = Unmanaged.passUnretained(fiber)
        shard.lock.lock()
        fiber.registryPrev = nil
        fiber.registryNext = shard.head
        if let head = shard.head { head.takeUnretainedValue().registryPrev = u }
        shard.head = u
        shard.lock.unlock()
    }

    func remove(_ fiber: Fiber) {
        fastShards[fiber.registryShard]._withUnsafeGuaranteedRef { remove(fiber, from: $0) }
    }

    private func remove(_ fiber: Fiber, from shard: Shard) {
        shard.lock.lock()
        if let prev = fiber.registryPrev {
            prev.takeUnretainedValue().registryNext = fiber.registryNext
        } else {
            shard.head = fiber.registryNext
        }
        if let next = fiber.registryNext { next.takeUnretainedValue().registryPrev = fiber.registryPrev }
        fiber.registryPrev = nil
        fiber.registryNext = nil
        shard.lock.unlock()
    }

    /// Calls `body` for each live green thread, with a retain held, outside
    /// any lock (body may wake them).
    func forEach(_ body: (Fiber) -> Void) {
        var all: [Fiber] = []
        for shard in shards {
            shard.lock.lock()
            var cursor = shard.head
            while let c = cursor {
                let f = c.takeUnretainedValue()
                all.append(f)
                cursor = f.registryNext
            }
            shard.lock.unlock()
        }
        all.forEach(body)
    }
}
