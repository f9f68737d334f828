// The machine half of coroutines, generators and greenlets: a control block
// in raw memory, the first code to run on a coroutine stack, and the two
// transfers (resume and suspend) everything else is built from.
//
// ## Design
// A coroutine is a stack plus two saved contexts: its own, and its caller's.
// `resume` saves the caller (afresh each time: the caller may be a green
// thread that has moved to another OS thread since the last resume) and
// jumps into the coroutine; `suspend` saves the coroutine and jumps back.
// Values travel through typed slots beside the control block, never through
// the switch itself, so the switch stays one generic C call. A slot is typed
// raw memory, so a hand-over is one store before the switch and one load
// after it: no box, no allocation, no copy through an existential.
//
// ## What a resume costs, and why no more
// A resume is two raw switches (gt_coroutine_resume and gt_coroutine_suspend
// in context.c) and the hand-over of one value each way. Nothing is
// allocated, retained or released per resume (the control block and the
// slots are raw memory the coroutine owns), and nothing is atomic: a
// coroutine is driven by one thread at a time, and the switch itself
// orders what either side wrote before it. What a switch must carry
// besides the registers is checked with a load and a compare, and the work
// behind a check is done only when there is some:
//
// - The exclusivity access set. A body may suspend inside an `inout`
//   access, and may be resumed from another OS thread (a plain thread, or
//   a green thread that migrated meanwhile): its open accesses must leave
//   the thread with it, or the caller would see them (a false conflict)
//   and the body would end them on a thread whose list lacks them (the
//   runtime traps in swift_endAccess). The runtime's bracket does that
//   (exit at each suspend, enter at each resume), but in the common case
//   it changes nothing, and its two calls were most of a resume. Skipping
//   them then is exact, not an approximation:
//   - Enter, when the body holds no access (its saved set is empty) and
//     neither does the resuming thread (its head is nil), returns without
//     a write.
//   - Exit, when the thread's head equals the head the body was entered on
//     (recorded by enter; nil if the caller held none), only clears the
//     saved set. That equality means the body has no access open: the
//     body's accesses are pushed above that head, and the caller's cannot
//     end while its frames wait under the body's. A green thread that
//     migrates inside the body carries the whole list, unchanged, with it.
//   Any other case calls the runtime, and so does a thread whose head
//   cannot be found (it reads as "open"): slower, never wrong.
// - Task-local bindings (task_locals.c): a generator's body and its caller
//   keep theirs apart. The leaving side takes what the thread's slot holds;
//   what the arriving side took when it left goes back.
// - The overflow label: the caller's context is always an OS thread's own
//   (unmanaged) and the body's always a coroutine stack, so noting what runs
//   is two stores on the way in and one on the way out.
// - Sanitizer fiber hooks exist only in sanitizer builds, where these
//   transfers are the general annotated one.
// The hooks and the slot belong to the OS thread, which is the same on both
// sides of a switch. So each side does, before switching, its own leaving
// work and the other side's arriving work, and nothing runs after a switch:
// both transfers end in a tail jump into the raw switch, which enters the
// other stack with an indirect jump rather than a `ret` (a return into
// another stack is always mispredicted; the two alternating targets of a
// resume and its yield are not). The first entry into a body goes through
// `start` (the bootstrap enters the access set itself) and the final
// transfer out of it through `suspend`.
//
// ## Invariants
// - The contexts live in the control block, which is malloc'ed raw memory:
//   the switch writes the stack pointer through a pointer, and a Swift class
//   property could be moved or checked for exclusivity under it.
// - Nothing on a coroutine stack holds a strong reference to the object that
//   owns it (`Coroutine`, `Greenlet`). A suspended body would otherwise keep
//   its owner alive forever, and abandoning it could never unwind it. That is
//   why the body is reached through `work`, a closure that captures only the
//   body and raw pointers, and why the entry's last frame holds nothing.
// - The frame that makes the final transfer is never returned to, so the
//   body runs in a separate, non-inlined function that has returned (and
//   released all it held) before that transfer.
import CContext

/// What a suspended coroutine must do when it resumes.
@usableFromInline
enum ResumeCommand: UInt8 {
    /// Continue: the pending yield returns the sent value.
    case proceed
    /// The pending yield throws the error left in the exchange slot.
    case raise
    /// The pending yield throws `CoroutineExit` (close or abandonment).
    case exit
}

/// Per-coroutine state that the switch and the yield handle share. Lives in
/// raw memory owned by the coroutine object, so no access to it pays a
/// dynamic exclusivity check.
///
/// `@usableFromInline`, with the resume and yield paths `@inlinable`: they
/// are generic, and left unspecialised in the client a generator resume
/// spends most of its time looking up type metadata (~750 ns a resume,
/// against a few tens specialised).
@usableFromInline
struct CoroutineControl {
    /// The coroutine's own execution, saved whenever it suspends.
    @usableFromInline var context = gt_context()
    /// Whoever resumed it last; saved afresh on every resume.
    @usableFromInline var caller = gt_context()
    /// The stack the body runs on; `base == nil` before start and after the
    /// body has finished.
    @usableFromInline var stack = gt_stack()
    @usableFromInline var state: CoroutineState = .created
    @usableFromInline var command: ResumeCommand = .proceed
    /// `CoroutineExit` was delivered: from now on a yield is refused.
    @usableFromInline var exitDelivered = false
    /// The body tried to yield after `exitDelivered`.
    @usableFromInline var ignoredExit = false
    /// The body, type-erased; taken (and so released) by the entry.
    @usableFromInline var work: (() -> Void)?
}

/// Resume and suspend over a `CoroutineControl`.
@usableFromInline
enum CoroutineSwitch {
    /// Smallest usable stack a coroutine gets: below this, the first `print`
    /// or a dynamic-linker lookup on the stack would hit the guard page.
    static let minimumStackSize = 16 * 1024

    /// Maps (or reuses) a stack and prepares the first transfer into the
    /// body, which returns to the caller when it finishes. Throws
    /// `RuntimeError.outOfStackMemory`, changing nothing, if no stack can
    /// be had.
    @usableFromInline
    static func prepare(_ c: UnsafeMutablePointer<CoroutineControl>, stackSize: Int) throws(RuntimeError) {
        try prepare(c, stackSize: stackSize, entry: coroutineEntry)
    }

    /// Maps (or reuses) a stack and prepares the first transfer into
    /// `entry`, which runs `work` and then transfers away for good.
    static func prepare(
        _ c: UnsafeMutablePointer<CoroutineControl>, stackSize: Int,
        entry: @convention(c) (UnsafeMutableRawPointer?) -> Void
    ) throws(RuntimeError) {
        let stack = try CoroutineStackPool.shared.take(size: max(stackSize, minimumStackSize))
        c.pointee.stack = stack
        gt_context_make(&c.pointee.context, stack.base, stack.size, entry, UnsafeMutableRawPointer(c))
        gt_context_init_base(&c.pointee.caller)
    }

    /// Where `c`'s own context lives, as a value that may outlive an access
    /// (greenlets pick their transfer targets before making the transfer).
    @inline(__always)
    static func contextPointer(_ c: UnsafeMutablePointer<CoroutineControl>) -> UnsafeMutablePointer<gt_context> {
        UnsafeMutableRawPointer(c)
            .advanced(by: MemoryLayout<CoroutineControl>.offset(of: \.context).unsafelyUnwrapped)
            .assumingMemoryBound(to: gt_context.self)
    }

    /// Runs a prepared coroutine's body from its start until it suspends or
    /// finishes. Caller side.
    @inlinable @inline(__always)
    static func start(_ c: UnsafeMutablePointer<CoroutineControl>) {
        c.pointee.command = .proceed
        c.pointee.state = .running
        gt_coroutine_start(&c.pointee.caller, &c.pointee.context)
    }

    /// Runs a suspended coroutine until it suspends again or finishes.
    /// Caller side.
    @inlinable @inline(__always)
    static func resume(_ c: UnsafeMutablePointer<CoroutineControl>, _ command: ResumeCommand) {
        c.pointee.command = command
        c.pointee.state = .running
        gt_coroutine_resume(&c.pointee.caller, &c.pointee.context)
    }

    /// Parks the coroutine and returns to its caller; returns the command it
    /// was resumed with. Coroutine side.
    @inlinable @inline(__always)
    static func suspend(_ c: UnsafeMutablePointer<CoroutineControl>) -> ResumeCommand {
        c.pointee.state = .suspended
        gt_coroutine_suspend(&c.pointee.context, &c.pointee.caller)
        return c.pointee.command
    }

    /// Gives back the stack of a body that has finished (or never ran).
    @usableFromInline
    static func releaseStack(_ c: UnsafeMutablePointer<CoroutineControl>) {
        guard c.pointee.stack.base != nil else { return }
        gt_context_destroy(&c.pointee.context)
        CoroutineStackPool.shared.give(c.pointee.stack)
        c.pointee.stack = gt_stack()
    }

    /// Whether the caller is running on `c`'s stack: the yield handle's
    /// guard against being called from anywhere but its own body.
    @inlinable @inline(__always)
    static func isOnStack(_ c: UnsafeMutablePointer<CoroutineControl>) -> Bool {
        guard let base = c.pointee.stack.base else { return false }
        var marker: UInt8 = 0
        return withUnsafeMutablePointer(to: &marker) { p in
            let here = UInt(bitPattern: p)
            let low = UInt(bitPattern: base)
            return here >= low && here < low + UInt(c.pointee.stack.size)
        }
    }
}

/// The first code on a coroutine stack. `arg` is the control block.
let coroutineEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let c = arg.unsafelyUnwrapped.assumingMemoryBound(to: CoroutineControl.self)
    runCoroutineWork(c)
    c.pointee.state = .closed
    // Final transfer: this frame holds only `c`, a raw pointer, so
    // abandoning it leaks nothing. The caller frees the stack.
    gt_coroutine_suspend(&c.pointee.context, &c.pointee.caller)
    preconditionFailure("GreenThreads: a finished coroutine was resumed")
}

/// Runs the body. Its own frame, so that everything the body held has been
/// released by the time the entry makes its final transfer.
@inline(never)
func runCoroutineWork(_ c: UnsafeMutablePointer<CoroutineControl>) {
    let work = c.pointee.work.take().unsafelyUnwrapped
    work()
}
