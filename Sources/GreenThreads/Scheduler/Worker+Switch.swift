import CContext
import Synchronization


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

    /// Runs the action the previous green thread left behind. Called first
    /// thing after every switch, on whichever worker we now are;
    /// `inGreenThread` is false only in the scheduling loop.
    @inline(__always)
    static func finishSwitch(inGreenThread: Bool = true, on worker: UnsafeMutableRawPointer = gt_current_worker().unsafelyUnwrapped) {
        // Guaranteed references throughout: workers and queued fibers
        // outlive every switch, and a strong local would cost a retain and
        // a release on every switch (a quarter of a yield, measured).
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
        let recyclable = f._withUnsafeGuaranteedRef { fiber in
            fiber.runState.store(Fiber.RunState.finished.rawValue, ordering: .releasing)
            // A fiber going to the cache keeps its registry entry.
            if !fiber.recyclable {
                registry.remove(fiber)
                fiber.isRegistered = false
            }
            recycle(fiber.takeStack())
            return fiber.recyclable
        }
        Self.bump(counters.completed)
        // The scheduler's reference, taken at spawn: to the cache, or dropped.
        if recyclable { cacheFiber(f) } else { f.release() }
    }
}
