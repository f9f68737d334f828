import GreenThreads
import Logging

/// Unjoined failures written through swift-log instead of stderr.
///
/// A green thread that throws while nobody holds its handle has no caller
/// to take the error; the runtime reports it through
/// `Runtime.Configuration.unhandledErrorHandler`, whose default writes one
/// line on stderr. That handler is the whole hook: this type only supplies
/// one that logs, so the core library needs no logging dependency and a
/// program that does not care keeps the plain line.
///
/// The runtime reports when the failed thread's last reference goes away,
/// on whichever thread lets go of it last: most often a worker between two
/// green threads, so the handler must not block. A log handler that writes
/// synchronously to a slow sink delays that worker's next green thread;
/// swift-log's stream and in-memory handlers take a lock for the write and
/// return, which is within that budget. A thread that unwound with
/// `CancellationError` did what it was asked and is never reported.
public enum UnhandledErrorLog {
    /// A handler for `Runtime.Configuration.unhandledErrorHandler` that
    /// writes each unjoined failure to `logger`.
    ///
    /// ```swift
    /// let logger = Logger(label: "app.greenthreads")
    /// let rt = Runtime(configuration: .init(
    ///     unhandledErrorHandler: UnhandledErrorLog.handler(logger: logger)))
    /// ```
    ///
    /// Each entry carries the error (as the log event's error and as the
    /// `error` metadata value) and the green thread's id as `green_thread`.
    ///
    /// - Parameters:
    ///   - logger: Where the entries go.
    ///   - level: Their level; `.error` by default.
    public static func handler(
        logger: Logger,
        level: Logger.Level = .error
    ) -> @Sendable (GreenThread.ID, any Error) -> Void {
        { id, error in
            logger.log(
                level: level,
                "GreenThreads: green thread \(id) failed and was never joined",
                error: error,
                metadata: [
                    "green_thread": "\(id.rawValue)",
                    "error": "\(error)",
                ]
            )
        }
    }
}
