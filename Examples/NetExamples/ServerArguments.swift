#if canImport(Glibc)
import Glibc
#endif

/// The servers' command line: `PORT [--workers N]`. Bad input prints the
/// problem and the usage line to stderr and exits with status 2.
public struct ServerArguments: Sendable, Equatable {
    public var port: Int
    /// nil: one worker per core.
    public var workers: Int?

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case missingPort
        case badPort(String)
        case badWorkers(String)
        case unexpected(String)

        public var description: String {
            switch self {
            case .missingPort: return "missing PORT"
            case .badPort(let s): return "PORT must be an integer in 0...65535, got '\(s)'"
            case .badWorkers(let s): return "--workers needs a positive integer, got '\(s)'"
            case .unexpected(let s): return "unexpected argument '\(s)'"
            }
        }
    }

    public static func parse(_ args: [String]) throws(Problem) -> ServerArguments {
        var port: Int?
        var workers: Int?
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--workers" {
                let v = i + 1 < args.count ? args[i + 1] : ""
                guard let n = Int(v), n > 0 else { throw .badWorkers(v) }
                workers = n
                i += 2
                continue
            }
            guard port == nil else { throw .unexpected(a) }
            guard let p = Int(a), (0...65535).contains(p) else { throw .badPort(a) }
            port = p
            i += 1
        }
        guard let port else { throw .missingPort }
        return ServerArguments(port: port, workers: workers)
    }

    /// Parses `CommandLine.arguments`, or exits with status 2 and a message.
    public static func fromCommandLine(program: String) -> ServerArguments {
        do {
            return try parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            logError("\(program): \(error)\nusage: \(program) PORT [--workers N]   (PORT 0: any free port)")
            exit(2)
        }
    }
}

/// A line on stderr (written straight to fd 2: Swift 6 treats the C
/// `stderr` global as shared mutable state).
public func logError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

/// Prints a line and flushes it at once, so a script waiting for a server's
/// "listening on" line sees it even when stdout is a pipe.
public func printNow(_ line: String) {
    print(line)
    fflush(nil)  // every stream: Swift 6 treats the C `stdout` global as shared mutable state
}
