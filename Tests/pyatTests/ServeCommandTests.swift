import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs the real `pyat` binary built next to the tests.
enum PyatBinary {
    static var url: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("pyat").path),
            directory.path != "/"
        {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("pyat")
    }
}

/// `pyat serve --demo` as a child process, once it printed its exports.
struct ServeChild {
    let process: ChildProcess
    let server: String
    let token: String

    static func start(
        dataDirectory: String,
        logLevel: String = "error",
        stderrPath: String? = nil,
        options: [String] = [],
        environment extra: [String: String] = [:]
    ) async throws -> ServeChild {
        let process = try ChildProcess(
            executable: PyatBinary.url.path,
            arguments: ["serve", "--demo", "--port", "0", "--data-dir", dataDirectory, "--log-level", logLevel]
                + options,
            environment: ProcessInfo.processInfo.environment.merging(extra) { _, new in new },
            stderrPath: stderrPath
        )
        do {
            let output = try #require(process.standardOutput)
            let text = try await readUntilExports(from: output.fileDescriptor, of: process)
            let lines = text.split(separator: "\n").map(String.init)
            let server = try #require(lines.first { $0.hasPrefix("export PYAT_SERVER=http://127.0.0.1:") })
                .replacingOccurrences(of: "export PYAT_SERVER=", with: "")
            let token = try #require(lines.first { $0.hasPrefix("export PYAT_TOKEN=pat_") })
                .replacingOccurrences(of: "export PYAT_TOKEN=", with: "")
            return ServeChild(process: process, server: server, token: token)
        } catch {
            process.kill()
            _ = await process.wait()
            throw error
        }
    }

    /// What the child printed up to its `PYAT_TOKEN=` line, read with a deadline (sized for a loaded
    /// machine) so a child that hangs before printing it fails the test instead of stalling the run.
    ///
    /// Read on a thread of its own: waiting for the child (seconds on a loaded machine) in `poll` on
    /// one of the few threads every test's tasks share stalled the other tests.
    private static func readUntilExports(from descriptor: Int32, of process: ChildProcess) async throws -> String {
        let cancelled = Atomic<Bool>(false)
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<String, ServeChildError>, Never>) in
                let thread = Thread {
                    let deadline = ContinuousClock.now + .seconds(120)
                    var text = ""
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while !text.contains("PYAT_TOKEN=") {
                        guard ContinuousClock.now < deadline, !cancelled.load(ordering: .relaxed) else {
                            continuation.resume(returning: .failure(.noExports(text)))
                            return
                        }
                        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                        let ready = poll(&poller, 1, 100)
                        if ready < 0 && errno != EINTR {
                            continuation.resume(returning: .failure(.noExports(text)))
                            return
                        }
                        if ready <= 0 { continue }
                        let count = read(descriptor, &buffer, buffer.count)
                        if count <= 0 {
                            continuation.resume(returning: .failure(.noExports(text)))
                            return
                        }
                        text += String(decoding: buffer[0..<count], as: UTF8.self)
                    }
                    continuation.resume(returning: .success(text))
                }
                thread.stackSize = 256 * 1024
                thread.start()
            }
        } onCancel: {
            cancelled.store(true, ordering: .relaxed)
        }
        try Task.checkCancellation()
        return try result.get()
    }
}

enum ServeChildError: Error, CustomStringConvertible {
    case noExports(String)

    var description: String {
        switch self {
        case .noExports(let text): "pyat serve ended or stalled before printing its exports; it printed: \(text)"
        }
    }
}

@Suite("pyat serve", .timeLimit(.minutes(15)))
struct ServeCommandTests {
    @Test("--demo prints ready-to-paste exports whose token works, and SIGTERM stops it cleanly")
    func demo() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let child = try await ServeChild.start(dataDirectory: directory.path)
        let (process, server, token) = (child.process, child.server, child.token)
        var finished = false
        defer { if !finished { process.terminate() } }

        var request = URLRequest(url: URL(string: server + "/api/v1/workspaces")!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (body, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: body, as: UTF8.self).contains("Demo workspace"))

        process.terminate()
        let status = await process.wait()
        finished = true
        #expect(ChildProcess.exitedNormally(status), "a graceful shutdown, not death by SIGTERM")
        #expect(status == 0)
        let secret = directory.appendingPathComponent("jwt-secret").path
        let permissions = try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
    }

    @Test("text logs: each line is rendered when written, with the request's metadata")
    func textLogs() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("serve.log").path
        let child = try await ServeChild.start(
            dataDirectory: directory.appendingPathComponent("data").path,
            logLevel: "debug",
            stderrPath: logPath
        )
        let (process, server) = (child.process, child.server)
        var finished = false
        defer { if !finished { process.terminate() } }
        var request = URLRequest(url: URL(string: server + "/health")!)
        request.setValue("trace-me-42", forHTTPHeaderField: "X-Request-ID")
        let (_, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)

        process.terminate()
        #expect(await process.wait() == 0)
        finished = true
        let log = try String(contentsOfFile: logPath, encoding: .utf8)
        let line = try #require(
            log.split(separator: "\n").first { $0.contains("request_id=trace-me-42") },
            "no line for the request in:\n\(log)"
        )
        #expect(line.contains(" debug pyat.server:"))
        #expect(line.contains("path=/health"))
        #expect(line.contains("status=200"))
        #expect(line.hasSuffix("] request"))
    }

    @Test("--threads N runs N event loops (the threads named NIO-SGLTN-…), and 0 is a usage error")
    func threads() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        for count in [1, 3] {
            let child = try await ServeChild.start(
                dataDirectory: directory.appendingPathComponent("data-\(count)").path,
                options: ["--threads", String(count)]
            )
            var finished = false
            defer { if !finished { child.process.terminate() } }
            let (_, response) = try await URLSession.shared.data(from: URL(string: child.server + "/health")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            let tasks = "/proc/\(child.process.pid)/task"
            let loops = try FileManager.default.contentsOfDirectory(atPath: tasks).filter { thread in
                let name = (try? String(contentsOfFile: "\(tasks)/\(thread)/comm", encoding: .utf8)) ?? ""
                return name.hasPrefix("NIO-SGLTN-")
            }
            #expect(loops.count == count, "event-loop threads of pyat serve --threads \(count)")
            child.process.terminate()
            #expect(await child.process.wait() == 0)
            finished = true
        }

        let stderrPath = directory.appendingPathComponent("stderr").path
        let process = try ChildProcess(
            executable: PyatBinary.url.path,
            arguments: [
                "serve", "--port", "0", "--data-dir", directory.appendingPathComponent("zero").path, "--threads", "0",
            ],
            environment: ProcessInfo.processInfo.environment,
            stdoutPath: directory.appendingPathComponent("stdout").path,
            stderrPath: stderrPath
        )
        #expect(await process.wait(timeout: .seconds(120)) == 2)
        let stderr = try String(contentsOfFile: stderrPath, encoding: .utf8)
        #expect(stderr.contains("--threads must be from 1 to 256"), "\(stderr)")
    }

    @Test("a PYAT_JWT_SECRET under 32 bytes is refused at start with the reason (usage error, nothing created)")
    func shortJWTSecret() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let dataDirectory = directory.appendingPathComponent("data").path
        let stderrPath = directory.appendingPathComponent("stderr").path
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_JWT_SECRET"] = "too-short"
        let process = try ChildProcess(
            executable: PyatBinary.url.path,
            arguments: ["serve", "--port", "0", "--data-dir", dataDirectory],
            environment: environment,
            stdoutPath: directory.appendingPathComponent("stdout").path,
            stderrPath: stderrPath
        )
        // A server that started anyway would never exit by itself: it is killed after a bounded wait.
        let status = await process.wait(timeout: .seconds(120))
        #expect(status == 2)
        let stderr = try String(contentsOfFile: stderrPath, encoding: .utf8)
        #expect(stderr.contains("PYAT_JWT_SECRET"), "\(stderr)")
        #expect(stderr.contains("at least 32"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: dataDirectory))
    }

    @Test("the data directory of pyat serve is 0700 and every file in it 0600, -wal and -shm included")
    func privateDataDirectory() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let child = try await ServeChild.start(dataDirectory: directory.path)
        var finished = false
        defer { if !finished { child.process.terminate() } }
        let manager = FileManager.default
        var names: [String] = []
        var modes: [String: Int] = [:]
        let enumerator = try #require(manager.enumerator(atPath: directory.path))
        while let relative = enumerator.nextObject() as? String {
            names.append(relative)
            let attributes = try manager.attributesOfItem(atPath: directory.path + "/" + relative)
            let mode = (attributes[.posixPermissions] as? Int ?? -1) & 0o7777
            modes[relative] = mode
            let isDirectory = attributes[.type] as? FileAttributeType == .typeDirectory
            #expect(mode == (isDirectory ? 0o700 : 0o600), "\(relative): \(String(mode, radix: 8))")
        }
        for expected in ["pyat.sqlite", "pyat.sqlite-wal", "pyat.sqlite-shm", "jwt-secret", "storage-secret"] {
            #expect(names.contains(expected), "\(expected) missing from \(names.sorted())")
        }
        let top = try manager.attributesOfItem(atPath: directory.path)[.posixPermissions] as? Int
        #expect(top.map { $0 & 0o7777 } == 0o700)
        child.process.terminate()
        #expect(await child.process.wait() == 0)
        finished = true
    }
}
