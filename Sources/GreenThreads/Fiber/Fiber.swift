import CContext
import Synchronization

/// What a parked green thread is waiting for; reported by deadlock detection.
///
/// Trivial (no reference in any case): storing a reason on every park is
/// then a plain store. With a `String` payload every assignment was an
/// outlined copy and destroy (measured on the channel round trip).
enum WaitReason: Sendable, CustomStringConvertible {
    case none
    case sleep
    case join(UInt64)
    case send
    case receive
    case select
    /// In `GreenThread.blocking`: the dump shows it as a state of its own.
    case blocking
    case other(StaticString)

    var description: String {
        switch self {
        case .none: return "running"
        case .sleep: return "sleep"
        case .join(let id): return "join of green thread #\(id)"
        case .send: return "send on a channel"
        case .receive: return "receive from a channel"
        case .select: return "select"
        case .blocking: return "GreenThread.blocking"
        case .other(let what): return what.description
        }
    }
}

/// The scheduler's view of one green thread: its stack, its saved context
/// and the state machine that lets it park on one worker and be woken from
/// any thread.
///
/// Run states (`runState`):
///
///     running ──park──▶ parking ──(switched out)──▶ parked ──ready──▶ queued ──▶ running
///                          │                                            ▲
///                          └──ready before the switch finished──▶ wakePending
///
/// `parking` exists because a green thread publishes itself as a waiter
/// *before* it has switched off its stack. A waker that arrives in that
/// window must not queue it (another worker could resume a half-saved
/// context); it leaves `wakePending` instead, and the worker that finishes
/// the switch sees that and queues the thread itself.
///
/// `compacting` is the same guard for a parked sleeper whose stack a worker
/// is copying out and releasing (`parked → compacting → parked`, see
/// StackCompaction.swift): a wake then also leaves `wakePending`, and the
/// compacting worker queues the thread once its stack is consistent.
@usableFromInline
class Fiber: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `runState` and the cancellation flags are
    // atomics, and a change of `runState` hands the fiber over: its unchecked
    // fields belong to the one worker that runs (or parks, queues, compacts)
    // it, until that worker publishes the next state. The registry links are
    // guarded by their registry shard's lock, `queueNext` by the queue that
    // holds the fiber.
    enum RunState: UInt8 {
        case queued = 0, running, parking, parked, wakePending, finished, compacting
    }

    /// Assigned when the thread is submitted (and again when a cached
    /// fiber is reused, see FiberCache.swift). A relaxed atomic, a plain
    /// load and store on every supported target: a reuse overwrites it
    /// after the last handle's holder read it, ordered only by that
    /// holder's release of its reference and the reuser's uniqueness
    /// check and fence (WorkerSpawn.swift), which ThreadSanitizer does not
    /// see (uninstrumented refcounting, no fence model).
    private let idStorage = Atomic<UInt64>(0)
    var id: UInt64 {
        @inline(__always) get { idStorage.load(ordering: .relaxed) }
        @inline(__always) set { idStorage.store(newValue, ordering: .relaxed) }
    }
    /// Kept alive by `anchor`, so reading it costs no retain.
    unowned(unsafe) let core: RuntimeCore
    private let anchor: CoreAnchor
    /// Lives in the top bytes of `stack`, which is stable raw memory: the
    /// switch writes the stack pointer through it. Valid once `hasStack`.
    ///
    /// The stack is bound when the thread first *runs*, not when it is
    /// spawned: a thread that runs to completion without blocking hands its
    /// stack, still hot in cache, straight to the next one, so a burst of
    /// short threads touches one stack instead of one each.
    ///
    /// `@exclusivity(unchecked)` on the hot fields: only the thread's own
    /// worker touches them, and a dynamic check costs more than the switch.
    @exclusivity(unchecked) private(set) var context: UnsafeMutablePointer<gt_context>
    @exclusivity(unchecked) private(set) var stack: gt_stack
    @exclusivity(unchecked) private(set) var hasStack = false
    /// The saved top of the stack while it is compacted (`gt_stack_save`);
    /// nil otherwise. Written by the compacting worker (state `compacting`)
    /// and by the worker that restores it before switching in.
    @exclusivity(unchecked) var compactedStack: UnsafeMutableRawPointer?
    /// Set when a compacted stack is copied back: at the end the stack
    /// returns to its pool clean (`StackPool.putClean`).
    @exclusivity(unchecked) final var stackWasCompacted = false

    let runState = Atomic<UInt8>(RunState.queued.rawValue)
    let cancelled = Atomic<Bool>(false)
    /// Set while parked in a wait that cancellation may end.
    let cancellableWait = Atomic<Bool>(false)
    /// The thread's active deadline and cancel scopes (Deadline.swift),
    /// nil while none is: all a wait outside every scope pays for them is
    /// this load. Points at `spareScopes`; owner only.
    @exclusivity(unchecked) final var scopes: Unmanaged<WaitScopes>?
    /// The `WaitScopes` of this fiber, kept between scopes (and across
    /// reuse) so that a scope allocates nothing; nil until the first.
    @exclusivity(unchecked) final var spareScopes: WaitScopes?
    @exclusivity(unchecked) var waitReason: WaitReason = .none
    /// The innermost group this thread has open (`withGreenGroup`), linked
    /// to the enclosing ones: `RuntimeCore.cancel` cancels their children.
    /// Guarded by `groupsLock`; nil whenever the thread is between groups,
    /// so at retirement and reuse too (Groups/OpenGroups.swift).
    @exclusivity(unchecked) final var innermostGroup: GroupScope?
    final let groupsLock = SpinLock()
    /// When the current park began, in `gt_ticks` (Dump.swift says why a
    /// tick counter and not the clock). Meaningful only while parked.
    @exclusivity(unchecked) final var parkedTicks: UInt64 = 0

    /// The name given at spawn (`go(name:)`), for dumps and reports. Set
    /// before the thread is queued and never changed while it lives: readers
    /// on other threads (a dump, a report) rely on that, not on a lock.
    @exclusivity(unchecked) final var name: String?
    /// Where the thread was spawned (`#fileID`, `#line` of the `go` call):
    /// a pointer to static text and a number, so capturing it costs two
    /// stores and no allocation. Set like `name`.
    @exclusivity(unchecked) @usableFromInline final var spawnFile: StaticString
    @exclusivity(unchecked) @usableFromInline final var spawnLine: UInt

    /// Intrusive links: the injection queue (and a netpoll batch on its way
    /// to a deque, Worker+Netpoll.swift), and the registry of live green
    /// threads (for deadlock reports and shutdown).
    @exclusivity(unchecked) var queueNext: Unmanaged<Fiber>?
    @exclusivity(unchecked) var registryPrev: Unmanaged<Fiber>?
    @exclusivity(unchecked) var registryNext: Unmanaged<Fiber>?
    @exclusivity(unchecked) var registryShard = 0
    /// In the registry: from its first run until it retires, or, when it
    /// goes to a FiberCache, until it leaves the cache other than by reuse
    /// (a reused fiber keeps its entry: no shard lock per spawn and exit).
    @exclusivity(unchecked) final var isRegistered = false
    /// Set by the body's end when the fiber may go to its worker's
    /// FiberCache at retirement (a value of a trivial type, no error).
    @exclusivity(unchecked) final var recyclable = false
    /// The thread's `GreenLocal` values; nil until it sets one. Only the
    /// thread itself touches it (GreenLocal.swift), and its body's end
    /// drops it.
    @exclusivity(unchecked) final var greenLocals: GreenLocalValues?

    /// `anchor`: the spawning worker's, or a fresh one for a spawn from
    /// outside (see CoreAnchor).
    init(core: RuntimeCore, anchor: CoreAnchor, name: String? = nil, file: StaticString = #fileID, line: UInt = #line) {
        self.core = core
        self.anchor = anchor
        self.name = name
        spawnFile = file
        spawnLine = line
        stack = gt_stack()
        context = UnsafeMutablePointer(bitPattern: 0x8)!  // replaced by bindStack before any use
        super.init()
        #if DEBUG
        core.fiberObjects.add(1, ordering: .relaxed)
        #endif
    }

    /// Gives a never-run thread its stack and the context to start it.
    /// Inlined into its one caller, `Worker.bindStack`, on every spawn.
    @inline(__always)
    final func bindStack(_ newStack: gt_stack) {
        stack = newStack
        hasStack = true
        // The context, then the label the overflow report reads (overflow.c).
        let topSize = (MemoryLayout<gt_green_top>.stride + 63) & ~63
        let top = (UnsafeMutableRawPointer(newStack.base!) + newStack.size - topSize)
            .bindMemory(to: gt_green_top.self, capacity: 1)
        context = UnsafeMutableRawPointer(top).assumingMemoryBound(to: gt_context.self)
        gt_context_make(
            context, newStack.base, newStack.size - topSize,
            fiberEntry, Unmanaged.passUnretained(self).toOpaque()
        )
        // Resumed only by workers, whose own access sets are empty: lets the
        // switch skip re-entering an empty exclusivity set.
        context.pointee.scheduled = 1
        gt_green_top_label(top, id, UInt64(newStack.size))
        if let name { setStackLabelName(name) }
    }

    /// Puts `name` in the label a stack overflow report prints (truncated
    /// to 47 bytes). Valid once `hasStack`; `bindStack` clears it.
    final func setStackLabelName(_ name: String) {
        let top = UnsafeMutableRawPointer(context).assumingMemoryBound(to: gt_green_top.self)
        name.withCString { gt_stack_label_set_name(&top.pointee.label, $0) }
    }

    #if DEBUG
    deinit {
        core.fiberObjects.subtract(1, ordering: .relaxed)
    }
    #endif

    /// Runs the body and records its outcome. Overridden by `TypedFiber`.
    func runBody() {}

    /// Records `error` as the outcome of a thread that never ran, and wakes
    /// its joiners. Overridden by `TypedFiber`.
    func failUnrun(_ error: any Error) {}

    /// Takes a fiber that leaves a FiberCache (not for reuse) out of the
    /// registry. The cache's reference is still held, so no snapshot can
    /// find it freed.
    final func unregister() {
        if isRegistered {
            core.registry.remove(self)
            isRegistered = false
        }
    }

    /// Makes a finished fiber from the cache new again (its subclass resets
    /// the outcome). Only the cache's reference may exist: see FiberCache.
    /// The claim ticket is kept, so that no waker of an earlier wait could
    /// ever match a later one.
    final func resetForReuse() {
        // Releasing: a dump (Dump.swift) that finds the fiber in the registry
        // and reads `queued` here, with acquire, also sees the name `restart`
        // stored just before; one that reads `finished` skips it.
        runState.store(RunState.queued.rawValue, ordering: .releasing)
        cancelled.store(false, ordering: .relaxed)
        recyclable = false
    }

    /// Hands the stack back; the context inside it is gone with it.
    final func takeStack() -> gt_stack {
        let s = stack
        stack = gt_stack()
        hasStack = false
        stackWasCompacted = false
        return s
    }

    @inline(__always)
    final var state: RunState {
        RunState(rawValue: runState.load(ordering: .acquiring))!
    }

    override final func resumeFromWait() {
        ready()
    }

    /// Makes a parked (or parking) green thread runnable. Exactly one caller
    /// per park: the winner of the wait's claim.
    final func ready() {
        while true {
            let s = runState.load(ordering: .acquiring)
            if s == RunState.parking.rawValue || s == RunState.compacting.rawValue {
                if runState.compareExchange(
                    expected: s, desired: RunState.wakePending.rawValue,
                    successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring
                ).exchanged { return }
            } else if s == RunState.parked.rawValue {
                // A plain store, not a CAS: once `parked`, only the one
                // claimer (us) may move the state, so nothing can change it
                // between our load and this store. The acquiring load above
                // pairs with finishSwitch's releasing CAS (the saved
                // context); this releasing store publishes the claimer's
                // writes (the value, the cause) to whoever runs the thread.
                runState.store(RunState.queued.rawValue, ordering: .releasing)
                // Guaranteed: retaining the core here would bounce its
                // reference count between workers on every wake.
                Unmanaged.passUnretained(core)._withUnsafeGuaranteedRef { $0.schedule(self, woken: true) }
                return
            } else {
                preconditionFailure("GreenThreads: green thread #\(id) woken while \(RunState(rawValue: s)!)")
            }
        }
    }
}

/// The first code on a fresh green stack. `arg` is the unretained fiber;
/// the scheduler holds its +1 until `retire`.
///
/// Nothing here may hold a strong reference when the final switch happens:
/// that frame is never returned to, so a retain held in it would leak.
private let fiberEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    Worker.finishSwitch()
    runFiberBody(arg!)
    Worker.retireCurrent()
}

@inline(never)
private func runFiberBody(_ raw: UnsafeMutableRawPointer) {
    // Guaranteed: the scheduler's +1 keeps it alive; a strong local would
    // cost a retain/release pair per thread.
    Unmanaged<Fiber>.fromOpaque(raw)._withUnsafeGuaranteedRef { fiber in
        fiber.runBody()
        // Its GreenLocal values go with the body, on its own stack, not when
        // the last handle to the fiber does (and never to a reused fiber).
        if fiber.greenLocals != nil { fiber.greenLocals = nil }
    }
}
