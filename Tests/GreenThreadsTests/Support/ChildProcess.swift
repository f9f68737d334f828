import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// This test binary run again for one test, selected by name, with extra
/// environment variables: stdout goes to /dev/null, stderr to a pipe read
/// through `read(until:)` (or to /dev/null when not captured).
final class ChildProcess {
    let pid: pid_t
    private let fd: Int32  // -1 when stderr is not captured
    private(set) var output = ""

    init(test name: String, environment extra: [String], captureStderr: Bool = true) throws {
        var exePath = [CChar](repeating: 0, count: 4096)
        let len = readlink("/proc/self/exe", &exePath, 4095)
        try #require(len > 0)
        let exe = String(decoding: exePath.prefix(len).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var env: [String] = []
        var e = environ
        while let p = e.pointee { env.append(String(cString: p)); e += 1 }
        env += extra
        let args = [exe, "--testing-library", "swift-testing", "--filter", name]
        let cArgs = args.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { for p in cArgs + cEnv { free(p) } }
        var fds: [Int32] = [-1, -1]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if captureStderr {
            try #require(pipe(&fds) == 0)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            posix_spawn_file_actions_addclose(&actions, fds[1])
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, nil, cArgs, cEnv)
        if captureStderr { close(fds[1]) }
        if rc != 0 && captureStderr { close(fds[0]) }
        try #require(rc == 0)
        pid = child
        fd = fds[0]
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Reads stderr until `needle` shows up, it closes, or 60 s pass (a
    /// loaded machine starts the child slowly).
    func read(until needle: String) {
        let deadline = gt_now_ns() + 60_000_000_000
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !output.contains(needle) && gt_now_ns() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) >= 0 || errno == EINTR else { return }
            if p.revents == 0 { continue }
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n <= 0 { return }
            output += String(decoding: buffer.prefix(n), as: UTF8.self)
        }
    }

    /// Waits for the child to end; its wait status.
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}
