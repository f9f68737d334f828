import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// Every coroutine suite (Coroutine, Generator, Greenlet), one test at a
/// time: they check `coroutineStacksInUse`, which is process-wide, and the
/// trait is inherited by the suites nested here.
@Suite("Coroutines", .serialized)
enum CoroutineSuites {}

/// The error the coroutine suites' bodies throw.
struct Oops: Error, Equatable { let code: Int }

/// Stacks owned by started, unfinished coroutines and greenlets,
/// process-wide. Every coroutine suite runs serialized (see
/// `CoroutineSuites`), so no other coroutine test moves it while one is
/// looking.
var coroutineStacksInUse: Int { CoroutineStackPool.shared.inUse.load(ordering: .relaxed) }
