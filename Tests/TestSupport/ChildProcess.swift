import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, owned by the test that started it.
///
/// A test run must end even when a test fails half-way, times out or is cancelled, so a child never
/// outlives its owner:
/// - ``wait()`` is cancellation-aware: a cancelled waiter (a test past its time limit, a task group
///   unwinding after an error) kills the child with SIGKILL, then returns its status;
/// - ``wait(timeout:)`` gives up after a bounded time and kills the child;
/// - dropping the last reference to a child that is still running kills it;
/// - when the test process exits, every child still running is killed.
///
/// Each child is the leader of a process group of its own, so it is not hit by a terminal's Ctrl-C
/// meant for the test run, and its own children die with it.
///
/// The tests do not use Foundation's `Process`: on Linux with Swift 6.3.1 its `run()` crashes now
/// and then (a buffer over-read while it lists `/proc/self/fd`, swift-corelibs-foundation#5472),
/// which took down whole test runs.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    /// The read end of the child's standard output, when it was captured.
    package let standardOutput: FileHandle?
    private let exit: ExitStatus

    package struct SpawnError: Error, CustomStringConvertible {
        package var call: String
        package var code: Int32
        package var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    /// Starts `executable`. Standard input comes from `stdinPath` (or /dev/null); standard output
    /// goes to a pipe (read it from ``standardOutput``) or to `stdoutPath`; standard error to
    /// `stderrPath` (or /dev/null).
    package init(
        executable: String,
        arguments: [String],
        environment: [String: String],
        stdinPath: String? = nil,
        stdoutPath: String? = nil,
        stderrPath: String? = nil
    ) throws {
        Self.installExitHandler
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

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        // Registered before the spawn returns, so an exit of the test process in between still
        // finds it; the registry lock also orders the spawn before the reaper's removal.
        let result = Self.live.withLock { live in
            let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            if result == 0 { live.insert(pid) }
            return result
        }
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else {
            if pipeEnds[0] >= 0 { close(pipeEnds[0]) }
            throw SpawnError(call: "posix_spawn", code: result)
        }
        self.pid = pid
        self.standardOutput = pipeEnds[0] >= 0 ? FileHandle(fileDescriptor: pipeEnds[0], closeOnDealloc: true) : nil
        self.exit = ExitStatus()
        Self.reap(pid: pid, into: exit)
    }

    deinit {
        if exit.status == nil { Self.signal(pid, SIGKILL) }
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
    package func terminate() {
        if exit.status == nil { Self.signal(pid, SIGTERM) }
    }

    /// Sends SIGKILL to the child and its process group.
    package func kill() {
        if exit.status == nil { Self.signal(pid, SIGKILL) }
    }

    /// The exit status once the child has ended (see ``wait()``); `nil` while it runs.
    package var status: Int32? { exit.status }

    /// Waits for the child to end: its exit status, or 128 + the signal that ended it. A cancelled
    /// waiter kills the child and returns its status (128 + SIGKILL).
    package func wait() async -> Int32 {
        let pid = pid
        return await withTaskCancellationHandler {
            await exit.wait()
        } onCancel: {
            Self.signal(pid, SIGKILL)
        }
    }

    /// Waits at most `timeout` for the child to end; past it the child is killed and `nil` returned.
    package func wait(timeout: Duration) async -> Int32? {
        await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await self.wait() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if first == nil {
                // Cancelling the waiter above killed the child; collect it so nothing is left behind.
                _ = await group.next()
            }
            return first
        }
    }

    /// Whether the child ended by itself with `exit` (not by a signal) — after ``wait()``.
    package static func exitedNormally(_ status: Int32) -> Bool { status < 128 }

    // MARK: - Every child of the test process

    /// Children started and not yet reaped.
    private static let live = Mutex<Set<pid_t>>([])

    private static let installExitHandler: Void = {
        atexit {
            ChildProcess.live.withLock { live in
                for pid in live { _ = Glibc.kill(-pid, SIGKILL) }
            }
        }
    }()

    /// Signals the child's process group, or the child alone if it has none yet.
    private static func signal(_ pid: pid_t, _ signal: Int32) {
        live.withLock { live in
            // A reaped pid may already belong to another process.
            guard live.contains(pid) else { return }
            if Glibc.kill(-pid, signal) != 0 { _ = Glibc.kill(pid, signal) }
        }
    }

    /// Waits for the child on a thread of its own (`waitpid` blocks), so no pool thread is held and a
    /// status is recorded even when nobody waits.
    private static func reap(pid: pid_t, into exit: ExitStatus) {
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let signal = status & 0x7F
            live.withLock { _ = $0.remove(pid) }
            exit.finish(signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
        }
        thread.stackSize = 64 * 1024
        thread.start()
    }
}

/// A child's exit status, set once by its reaper, and the tasks waiting for it.
private final class ExitStatus: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())

    var status: Int32? { state.withLock { $0.status } }

    func finish(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }
}
