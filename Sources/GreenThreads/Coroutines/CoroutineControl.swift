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
// the switch itself, so the switch stays one generic C call.
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
/// spent ~750 ns looking up type metadata; specialised, it costs ~40 ns,
/// two thirds of it the C switch and its exclusivity bracket (measured).
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

    /// Runs the coroutine until it suspends or finishes. Caller side.
    @inlinable @inline(__always)
    static func resume(_ c: UnsafeMutablePointer<CoroutineControl>, _ command: ResumeCommand) {
        c.pointee.command = command
        c.pointee.state = .running
        gt_context_transfer(&c.pointee.caller, &c.pointee.context)
    }

    /// Parks the coroutine and returns to its caller; returns the command it
    /// was resumed with. Coroutine side.
    @inlinable @inline(__always)
    static func suspend(_ c: UnsafeMutablePointer<CoroutineControl>) -> ResumeCommand {
        c.pointee.state = .suspended
        gt_context_transfer(&c.pointee.context, &c.pointee.caller)
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
    gt_context_transfer(&c.pointee.context, &c.pointee.caller)
    preconditionFailure("GreenThreads: a finished coroutine was resumed")
}

/// Runs the body. Its own frame, so that everything the body held has been
/// released by the time the entry makes its final transfer.
@inline(never)
func runCoroutineWork(_ c: UnsafeMutablePointer<CoroutineControl>) {
    let work = c.pointee.work.take().unsafelyUnwrapped
    work()
}
