import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`.
///
/// The tests do not use Foundation's `Process`: on Linux with Swift 6.3.1 its `run()` crashes now
/// and then (a buffer over-read while it lists `/proc/self/fd`, swift-corelibs-foundation#5472),
/// which took down whole test runs.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    /// The read end of the child's standard output, when it was captured.
    let standardOutput: FileHandle?

    struct SpawnError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    /// Starts `executable`. Standard input comes from `stdinPath` (or /dev/null); standard output
    /// goes to a pipe (read it from ``standardOutput``) or to `stdoutPath`; standard error to
    /// `stderrPath` (or /dev/null).
    init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        stdinPath: String? = nil,
        stdoutPath: String? = nil,
        stderrPath: String? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        var pipeEnds: [Int32] = [-1, -1]
        if let stdoutPath {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        } else {
            guard pipe(&pipeEnds) == 0 else { throw SpawnError(call: "pipe", code: errno) }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
            posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
            posix_spawn_file_actions_addclose(&actions, pipeEnds[1])
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // Nothing else of the test process leaks into the child: an inherited listening socket would
        // keep a stopped test server's port taken for as long as the child runs.
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            throw SpawnError(call: "posix_spawn", code: result)
        }
        self.pid = pid
        self.standardOutput = pipeEnds[0] >= 0 ? FileHandle(fileDescriptor: pipeEnds[0], closeOnDealloc: true) : nil
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module does not
    /// declare.
    private static let addCloseFrom:
        (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
            else { return nil }
            return unsafeBitCast(
                symbol,
                to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self
            )
        }()

    /// Sends SIGTERM.
    func terminate() {
        kill(pid, SIGTERM)
    }

    /// Waits for the child to end: its exit status, or 128 + the signal that ended it.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var status: Int32 = 0
                while waitpid(self.pid, &status, 0) < 0 && errno == EINTR {}
                let signal = status & 0x7F
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
            }
        }
    }

    /// Whether the child ended by itself with `exit` (not by a signal) — after ``wait()``.
    static func exitedNormally(_ status: Int32) -> Bool { status < 128 }
}
