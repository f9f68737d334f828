// GreenLocal.swift: a variable with one value per green thread (Python's
// threading.local and gevent.local, Java's ThreadLocal).
//
// ## The problem
//
// OS-thread-local storage is the wrong scope on a green-thread runtime:
// many green threads share one worker, one after the other, and one green
// thread may run on several workers over its life. A value kept in the
// worker's thread-local slot would be seen by every green thread that
// happens to run there, and lost when its own thread migrates.
//
// ## Design
//
// Each green thread's values live on its `Fiber` (`greenLocals`): a small
// object holding a dictionary from a `GreenLocal`'s key to a box with that
// thread's value. Each GreenLocal takes a process-unique key at init, so
// two instances never share a slot, whatever their type, and the box's
// type is fixed by the key (an unchecked downcast is safe). Only the
// thread itself reads or writes its fiber's values (it is the current
// fiber of whichever worker runs it), so they need no lock, and they move
// with the thread when it migrates.
//
// A thread that never set a value has no storage at all: reading falls
// back to the default without allocating. The storage is dropped when the
// thread's body ends, on its own stack (the values' deinits run there, not
// whenever the last handle to the fiber goes).
//
// Code on a plain OS thread (no current fiber) gets per-OS-thread values:
// the same storage object under a pthread key, released by the key's
// destructor when the thread exits. That includes the body of
// `GreenThread.blocking`, which runs on a pool thread.
//
// ## Cost
//
// Nothing on the switch path: the storage is a field of the fiber, not a
// slot that a switch saves and restores (as the task-local binding is). A
// read is a thread-local load of the current worker, two loads and a
// dictionary lookup; a first write allocates the storage and a box. Ending
// a thread checks one field.
//
// Rejected: one dictionary keyed by green thread id inside each GreenLocal.
// It would need a lock on every access, and entries of finished threads
// would stay until someone swept them.
//
// Keys are never reused, so a value outlives a GreenLocal that is released
// before the threads that set it end (Java's ThreadLocal has the same
// trade): a long-lived OS thread that sets many short-lived GreenLocals
// keeps their values until it exits.

import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A variable with a separate value in every green thread (Python's
/// `threading.local`, gevent's `local`).
///
/// ```swift
/// let requestID = GreenLocal<String?>(nil)
/// go {
///     requestID.value = "r-17"
///     handle()          // anything this green thread calls sees "r-17"
/// }
/// ```
///
/// A thread that has not set the value reads the default. Values belong to
/// the green thread, not to the worker it happens to run on: another green
/// thread on the same worker sees its own value, and a thread that migrates
/// keeps its own. On a plain OS thread (and inside `GreenThread.blocking`,
/// whose body runs on a pool thread) the value is per OS thread. A green
/// thread's values are released when its body ends.
public final class GreenLocal<T: Sendable>: Sendable {
    private let key: UInt64
    private let defaultValue: T

    /// Creates a variable whose value is `defaultValue` in every thread
    /// that has not set it.
    public init(_ defaultValue: T) {
        key = GreenLocalValues.nextKey.add(1, ordering: .relaxed).newValue
        self.defaultValue = defaultValue
    }

    /// The calling thread's value.
    public var value: T {
        get {
            guard let box = GreenLocalValues.current(creating: false)?.boxes[key] else { return defaultValue }
            return unsafeDowncast(box, to: GreenLocalBox<T>.self).value
        }
        set {
            let values = GreenLocalValues.current(creating: true).unsafelyUnwrapped
            if let box = values.boxes[key] {
                unsafeDowncast(box, to: GreenLocalBox<T>.self).value = newValue
            } else {
                values.boxes[key] = GreenLocalBox(newValue)
            }
        }
    }
}

/// One thread's value of one `GreenLocal`.
private final class GreenLocalBox<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

/// One thread's values of every `GreenLocal` it set: on its `Fiber` for a
/// green thread, under a pthread key for an OS thread. Only that thread
/// touches it.
final class GreenLocalValues {
    /// Keys handed out so far; 0 is never a key.
    static let nextKey = Atomic<UInt64>(0)

    var boxes: [UInt64: AnyObject] = [:]

    /// The calling thread's storage; with `creating`, made on first use.
    static func current(creating: Bool) -> GreenLocalValues? {
        if let raw = gt_current_worker() {
            let onFiber = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker -> GreenLocalValues?? in
                guard let fiber = worker.local.pointee.current else { return .none }
                return fiber._withUnsafeGuaranteedRef { fiber -> GreenLocalValues? in
                    if let values = fiber.greenLocals { return values }
                    guard creating else { return nil }
                    let values = GreenLocalValues()
                    fiber.greenLocals = values
                    return values
                }
            }
            if case .some(let values) = onFiber { return values }
        }
        return onOSThread(creating: creating)
    }

    private static func onOSThread(creating: Bool) -> GreenLocalValues? {
        let key = osThreadKey
        if let raw = pthread_getspecific(key) {
            return Unmanaged<GreenLocalValues>.fromOpaque(raw).takeUnretainedValue()
        }
        guard creating else { return nil }
        let values = GreenLocalValues()
        // The key's destructor releases this reference at thread exit.
        let rc = pthread_setspecific(key, Unmanaged.passRetained(values).toOpaque())
        precondition(rc == 0, "GreenThreads: pthread_setspecific failed for GreenLocal (\(rc))")
        return values
    }
}

/// The pthread key of OS threads' `GreenLocalValues`.
private let osThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let rc = pthread_key_create(&key) { raw in
        if let raw { Unmanaged<GreenLocalValues>.fromOpaque(raw).release() }
    }
    precondition(rc == 0, "GreenThreads: pthread_key_create failed for GreenLocal (\(rc))")
    return key
}()
