import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The owner of the tests' child processes stops them on every path: so a test that fails, times out
/// or is cancelled cannot leave a `pyat watch` behind for the run to wait on.
@Suite("Child processes owned by a test", .timeLimit(.minutes(15)))
struct ChildProcessTests {
    /// Whether `pid` is gone (or a zombie nobody has reaped yet), within a bounded wait.
    static func ends(_ pid: pid_t) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if kill(pid, 0) != 0 { return true }
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            if let close = stat.lastIndex(of: ")"), stat[close...].dropFirst(2).first == "Z" { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    static func sleeper() throws -> ChildProcess {
        try ChildProcess(executable: "/bin/sleep", arguments: ["600"], environment: [:])
    }

    @Test("wait(timeout:) kills a child that runs past it and reports nil")
    func waitTimeout() async throws {
        let child = try Self.sleeper()
        let started = ContinuousClock.now
        #expect(await child.wait(timeout: .milliseconds(200)) == nil)
        #expect(ContinuousClock.now - started < .seconds(60))
        #expect(child.status == 128 + SIGKILL)
        #expect(try await Self.ends(child.pid))
    }

    @Test("a cancelled wait kills the child and returns its status")
    func cancelledWait() async throws {
        let child = try Self.sleeper()
        let waiter = Task { await child.wait() }
        waiter.cancel()
        #expect(await waiter.value == 128 + SIGKILL)
        #expect(try await Self.ends(child.pid))
    }

    @Test("dropping the last reference to a running child kills it")
    func droppedChild() async throws {
        var child: ChildProcess? = try Self.sleeper()
        let pid = try #require(child?.pid)
        child = nil
        #expect(child == nil)
        #expect(try await Self.ends(pid))
    }

    @Test("killing a child takes its own children with it (a process group of its own)")
    func processGroup() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-child-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = directory.appendingPathComponent("grandchild").path
        let child = try ChildProcess(
            executable: "/bin/sh",
            arguments: ["-c", "sleep 600 & echo $! > \(pidFile).tmp && mv \(pidFile).tmp \(pidFile); wait"],
            environment: [:]
        )
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: pidFile), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let grandchild = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        child.kill()
        #expect(await child.wait() == 128 + SIGKILL)
        #expect(try await Self.ends(grandchild), "the shell's child survived it")
    }

    @Test("a run of pyat past its time limit is killed and reported")
    func pyatRunTimeout() async throws {
        let error = await #expect(throws: PyatProcess.TimedOut.self) {
            try await PyatProcess.run(
                executable: "/bin/sleep",
                ["600"],
                environment: [:],
                timeout: .milliseconds(200)
            )
        }
        #expect(error?.description.contains("was killed") == true)
    }
}
