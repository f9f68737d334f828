// OpenGroups.swift: the groups a green thread has open, so that cancelling
// the thread reaches the children it started in them.
//
// A thread's open groups nest lexically (`withGreenGroup` returns before
// the group that encloses it does), so they form a stack: `Fiber.innermostGroup`
// and each scope's `outer` link. Only the owning thread pushes and pops;
// `RuntimeCore.cancel`, on any thread, walks it.
//
// ## Why a cancel cannot miss a group being opened
//
// `cancel` stores `cancelled` and only then takes `groupsLock` to walk the
// stack. `openGroup` pushes under `groupsLock` and, still holding it, reads
// `cancelled`. The lock orders the two critical sections: if the opener's
// comes second, the canceller's store happened before its unlock, which
// happened before the opener's lock, so the opener reads true and cancels
// the new group itself; if the canceller's comes second, it finds the group
// on the stack. Either way the group is cancelled, before any child can be
// added to it (a child is added only once `openGroup` has returned). A
// relaxed load suffices under the lock: the lock supplies the ordering.
//
// A group popped while a canceller still holds it (collected under the
// lock, cancelled after it) is closed and has no children left, so the late
// `cancelAll` finds nothing to do.
//
// Cancelling a scope never happens under `groupsLock`: `cancelAll` resumes
// waiters and cancels children, which may wake a sleeping worker (a futex
// call, never under a spin lock). Going down the tree takes each child's
// own `groupsLock` in turn; no lock is held across levels, so nothing can
// deadlock however deep the groups nest.

extension Fiber {
    /// Pushes `scope` as this thread's innermost open group. Called by the
    /// thread itself; cancels the scope at once if the thread is cancelled.
    func openGroup(_ scope: GroupScope) {
        groupsLock.lock()
        scope.outer = innermostGroup
        innermostGroup = scope
        let cancelledAlready = cancelled.load(ordering: .relaxed)
        groupsLock.unlock()
        if cancelledAlready { scope.cancelAll() }
    }

    /// Pops `scope`, which must be the innermost open group.
    func closeGroup(_ scope: GroupScope) {
        groupsLock.lock()
        precondition(innermostGroup === scope, "GreenThreads: green groups closed out of order")
        innermostGroup = scope.outer
        scope.outer = nil
        groupsLock.unlock()
    }

    /// Cancels the children of every group this thread has open (called by
    /// `RuntimeCore.cancel` after it set `cancelled`).
    func cancelOpenGroups() {
        groupsLock.lock()
        guard let innermost = innermostGroup else {
            groupsLock.unlock()
            return
        }
        var open = [innermost]
        while let outer = open[open.count - 1].outer { open.append(outer) }
        groupsLock.unlock()
        for scope in open { scope.cancelAll() }
    }
}
