import CContext
import Synchronization

// Worker+Switch.swift: how a green thread leaves the CPU and the next one
// gets it.
//
// The machine part, saving callee-saved registers and swapping stacks, is
// `gt_context_transfer` in the C layer (context.c and the switch_*.S files,
// whose headers describe the frame and the exclusivity bracket). This file
// is the scheduler's part: what to run next, and what to do with the thread
// that left.
//
// ## Direct switching, with a pending action
//
// `switchAway(action)` picks the next local thread (`nextLocal`) and
// transfers straight into it; only when nothing is local does it transfer
// to the worker's own stack, where the scheduling loop runs. A yield or park
// so costs one transfer, not two. The leaving thread cannot carry out its
// own action: until the transfer has saved its registers, another worker
// must not be able to resume it (two CPUs would run on one stack), and a
// finished thread cannot free the stack it stands on. So it records the
// action in `WorkerLocal.pending`, and `finishSwitch` carries it out first
// thing at every landing site (after the transfer in `switchAway`, at the
// top of a fresh thread's entry, after the transfer in `runLoop`), on
// whichever worker the code now runs:
//
// * `.requeue` (a yield the yield queue could not take before the switch):
//   `runState = queued` (release), then the yield queue, or the deque if the
//   ring is full. A yielder may join the yield queue *before* the transfer,
//   with no action left pending: nobody but this worker reads the ring while
//   it switches (thieves never see it; it is exposed or handed to sysmon only
//   after the switch, YieldQueue.swift). The deque is different: a thief
//   could resume a context it finds there before its registers are saved.
// * `.park`: CAS `parking → parked` (release: publishes the saved context to
//   whoever readies the thread, whose CAS acquires). If the CAS fails, the
//   state is `wakePending`: the thread was woken during the switch, and is
//   queued on this worker's run-next slot here (`settleParked`).
// * `.retire`: `finished`; the stack goes back to the local pool; the
//   scheduler's +1 (taken at spawn) moves into the worker's fiber cache for
//   reuse, or the fiber leaves the registry and the +1 is dropped.
//
// A lone yielder, one for which the pick (ticks and their timers, netpoll
// and injector included) found nothing else runnable, just goes on: the
// scheduling loop would pick it straight back after two transfers for
// nothing.
//
// Once the runtime stops, or a spare worker must retire, every switch goes
// back to the scheduling loop (`Interrupt.toLoop`, one relaxed load): green
// threads handing the CPU to each other directly would otherwise keep the
// worker from ever exiting.
//
// ## Raw pointers only across the final transfer
//
// A retiring thread's frames are never returned to, so any retain held in
// them (even a temporary one for a property read) leaks that object. So the
// switch reaches the worker and the fiber through `Unmanaged` and
// `_withUnsafeGuaranteedRef`, and passes only context pointers to the
// transfer; a fiber's body runs in a separate non-inlined function that has
// returned, and released everything, before `retireCurrent` runs.
// Guaranteed references also keep `finishSwitch` free of retain/release
// pairs: workers and queued fibers outlive every switch.
//
// `WorkerLocal` (current thread, pending action, the scheduler's context) is
// raw memory for the same reason as the contexts: the switch writes through
// its address, and a class `var` would pay a dynamic exclusivity check on
// every switch.
//
// ## The resumer hands its worker over
//
// The scheduler switches with `gt_context_transfer_passing(from, to,
// worker)`: the raw switch returns its third argument to the side it
// resumes (a register move before its `ret`), so a thread resumed in
// `switchAway` learns which worker it now runs on without a thread-local
// read. Every switch into a suspended scheduled context comes from
// `switchAway` or `runLoop`, which both pass their worker; only a fresh
// context's first landing reads the thread-local.
//
// ## Stale thread-locals
//
// Once inlined, a thread-local's address is computed once and reused after
// the thread migrates. So `gt_current_worker` is an out-of-line C function
// and `Worker.current` calls it every time, and after `switchAway` returns,
// any `Worker` held in a local variable may be another thread's. Runtime
// locks are the owner-less `SpinLock`, never held across a switch:
// `Synchronization.Mutex` records its owner thread and breaks when a holder
// migrates.

/// What the code that resumes after a switch must do for the green thread
/// that just left the CPU. It cannot do these itself: until the switch has
/// saved its registers, another worker must not be able to resume it, and
/// a finished thread cannot free the stack it is standing on.
enum PendingAction: UInt8 {
    case none
    case requeue  // yield: to the local yield queue (YieldQueue.swift)
    case park     // commit the park (or queue it, if woken meanwhile)
    case retire   // finished: recycle the stack, drop the scheduler's +1
}

extension Worker {
    /// Leaves the running green thread with `action` pending and runs the
    /// next local one directly (green-to-green, no trip through the
    /// scheduler stack), or the scheduling loop when there is none.
    /// Returns when the green thread is resumed, possibly on another worker.
    @inline(__always)
    func switchAway(_ action: PendingAction) {
        let l = local
        let from = l.pointee.current.unsafelyUnwrapped
        enterSwitch()
        // Only raw pointers may be live across the transfer: when `from` is
        // retiring, this frame is abandoned, and any retain held in it (even
        // a temporary one for a property read) would leak that object.
        let fromContext = from._withUnsafeGuaranteedRef { $0.context }
        // Once the runtime stops (or this spare must retire), every switch
        // goes back to the scheduling loop, so that green threads handing the
        // CPU to each other directly cannot keep a worker from exiting.
        let toLoop = interrupts.load(ordering: .relaxed) & Interrupt.toLoop != 0
        if !toLoop, let next = nextLocal(oldestFirst: action == .requeue) {
            // A yielder may join the yield queue before its context is
            // saved: nobody else can take it from there while this worker
            // switches (thieves never see the ring, and it is exposed or
            // handed to sysmon only after the switch). If the ring is full
            // or disabled, the yielder goes to the deque, after the switch.
            if action == .requeue, l.pointee.yields.push(UInt(bitPattern: from.toOpaque())) {
                from._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
            } else {
                l.pointee.pending = action
                l.pointee.pendingFiber = from
            }
            l.pointee.current = next
            let toContext = next._withUnsafeGuaranteedRef { n in
                n.runState.store(Fiber.RunState.running.rawValue, ordering: .relaxed)
                return contextToRun(n)
            }
            // nil: no stack could be had for `next`, which ended unrun.
            guard let toContext else { return switchToLoop(from: fromContext) }
            // The worker that resumes us hands itself over (it is the one we
            // then run on): no thread-local read after the switch.
            let resumer = gt_context_transfer_passing(fromContext, toContext, Unmanaged.passUnretained(self).toOpaque())
            Worker.finishSwitch(on: resumer.unsafelyUnwrapped)
        } else if action == .requeue && !toLoop {
            // Nothing else is runnable here (the pick above also served the
            // periodic duties: timers, netpoll, injector): the scheduling
            // loop would pick the yielder straight back, so it just goes on,
            // without two transfers for nothing.
            leaveSwitch()
            return
        } else {
            l.pointee.pending = action
            l.pointee.pendingFiber = from
            l.pointee.current = nil
            let resumer = gt_context_transfer_passing(
                fromContext, &l.pointee.schedulerContext, Unmanaged.passUnretained(self).toOpaque())
            Worker.finishSwitch(on: resumer.unsafelyUnwrapped)
        }
    }

    /// The switch to the scheduling loop when the thread picked to run next
    /// ended before it ran (no stack): the action for the leaving thread is
    /// pending already, and `current` is nil.
    @inline(never)
    private func switchToLoop(from fromContext: UnsafeMutablePointer<gt_context>) {
        let resumer = gt_context_transfer_passing(
            fromContext, &local.pointee.schedulerContext, Unmanaged.passUnretained(self).toOpaque())
        Worker.finishSwitch(on: resumer.unsafelyUnwrapped)
    }

    /// Runs the action the previous green thread left behind. Called first
    /// thing after every switch, on whichever worker we now are;
    /// `inGreenThread` is false only in the scheduling loop.
    @inline(__always)
    static func finishSwitch(inGreenThread: Bool = true, on worker: UnsafeMutableRawPointer = gt_current_worker().unsafelyUnwrapped) {
        // Guaranteed references throughout: workers and queued fibers
        // outlive every switch, and a strong local would cost a retain and
        // a release on every switch (a quarter of a yield's cost).
        Unmanaged<Worker>.fromOpaque(worker)._withUnsafeGuaranteedRef { w in
            let l = w.local
            let action = l.pointee.pending
            if action != .none {
                l.pointee.pending = .none
                let f = l.pointee.pendingFiber.unsafelyUnwrapped
                l.pointee.pendingFiber = nil
                switch action {
                case .requeue:
                    f._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
                    w.queueYielder(f)
                case .park:
                    // Release: the context the switch just saved is published to
                    // whoever readies the thread (their CAS acquires).
                    w.settleParked(f, from: .parking)
                case .retire:
                    w.retire(f)
                case .none:
                    break
                }
            }
            if inGreenThread { w.afterSwitch() }
        }
    }

    /// Ends a transient state of a parked thread (`parking` after its switch
    /// out, `compacting` after its stack was saved): `parked` (release: the
    /// saved context or stack is published to whoever readies it, whose CAS
    /// acquires), or, if a wake came meanwhile (`wakePending`), queued on
    /// our run-next slot (`wakeNext`).
    @inline(__always)
    func settleParked(_ f: Unmanaged<Fiber>, from state: Fiber.RunState) {
        let settled = f._withUnsafeGuaranteedRef { fiber in
            fiber.runState.compareExchange(
                expected: state.rawValue, desired: Fiber.RunState.parked.rawValue,
                successOrdering: .releasing, failureOrdering: .acquiring
            ).exchanged
        }
        if !settled {
            f._withUnsafeGuaranteedRef { $0.runState.store(Fiber.RunState.queued.rawValue, ordering: .releasing) }
            wakeNext(f)
        }
    }

    @inline(__always)
    func notifyWork() {
        idle.notifyWork()
    }

    /// Ends the running green thread: the last thing on its stack.
    static func retireCurrent() -> Never {
        let raw = gt_current_worker().unsafelyUnwrapped
        // Guaranteed reference: no retain is taken in this frame, which is
        // never returned to.
        Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.switchAway(.retire) }
        preconditionFailure("GreenThreads: a finished green thread was resumed")
    }

    private func retire(_ f: Unmanaged<Fiber>) {
        // Counted before `finished` is published (release): whoever waits
        // for that state, as `Runtime.run` does for its main thread, then
        // reads the count with it, and `stats` says it is no longer live.
        Self.bump(counters.completed)
        let recyclable = f._withUnsafeGuaranteedRef { fiber in
            fiber.runState.store(Fiber.RunState.finished.rawValue, ordering: .releasing)
            // A fiber going to the cache keeps its registry entry.
            if !fiber.recyclable {
                registry.remove(fiber)
                fiber.isRegistered = false
            }
            // Its last switch is done: a sanitizer's record of the context
            // (sanitizer_fibers.h) goes before the stack is reused.
            gt_context_destroy(fiber.context)
            let wasCompacted = fiber.stackWasCompacted
            recycle(fiber.takeStack(), wasCompacted: wasCompacted)
            return fiber.recyclable
        }
        if limitsLive { Unmanaged.passUnretained(core)._withUnsafeGuaranteedRef { $0.releaseLive() } }
        // The scheduler's reference, taken at spawn: to the cache, or dropped.
        if recyclable { cacheFiber(f) } else { f.release() }
    }
}
