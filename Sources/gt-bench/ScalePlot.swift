// `gt-bench scale --plot`: hands the JSON report to scripts/plot-scale,
// the one program that draws scaling charts (compare.sh's three-runtime
// chart comes from it too), rather than a second renderer in Swift. The
// script is found beside the package: upward from the gt-bench binary
// (`.build/release/gt-bench` sits two levels under the package root), then
// upward from the working directory; GT_PLOT_SCALE names it outright.
import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

enum ScalePlot {
    static func draw(report: Report, to png: String) throws {
        guard let script = locateScript() else {
            throw BenchmarkFailure(description: "--plot: scripts/plot-scale not found above the gt-bench binary or the working directory; set GT_PLOT_SCALE to its path")
        }
        var template = Array("/tmp/gt-bench-scale-XXXXXX.json".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 5) }
        guard fd >= 0 else { throw BenchmarkFailure(description: "--plot: cannot create a temporary file (errno \(errno))") }
        let jsonPath = cString(template)
        defer { unlink(jsonPath) }
        let bytes = Array(report.json().utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw BenchmarkFailure(description: "--plot: short write to \(jsonPath)") }

        fflush(nil)  // the table first, then whatever the script prints
        let status = try spawnAndWait([script, "--out", png, jsonPath])
        guard status == 0 else { throw BenchmarkFailure(description: "--plot: \(script) exited with status \(status)") }
    }

    private static func locateScript() -> String? {
        if let named = getenv("GT_PLOT_SCALE") { return String(cString: named) }
        var starts: [String] = []
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            buf[n] = 0
            starts.append(parent(cString(buf)))
        }
        if getcwd(&buf, buf.count) != nil { starts.append(cString(buf)) }
        for start in starts {
            var dir = start
            while true {
                let candidate = dir + "/scripts/plot-scale"
                if access(candidate, X_OK) == 0 { return candidate }
                if dir == "/" || dir.isEmpty { break }
                dir = parent(dir)
            }
        }
        return nil
    }

    /// The text of a NUL-terminated C buffer.
    private static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Runs `argv` (argv[0] a path) with this process's environment and
    /// returns its exit status.
    private static func spawnAndWait(_ argv: [String]) throws -> Int32 {
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], nil, nil, cArgs, environ)
        guard rc == 0 else { throw BenchmarkFailure(description: "--plot: cannot start \(argv[0]) (error \(rc))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, which Swift does not import as macros.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
