import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A `pyat serve` child process of a benchmark: the server in its own process, so it does not share
/// the clients' threads, stopped (SIGTERM, then waited for) on every path out of ``with(arguments:_:)``.
enum ServeChild {
    /// What a started child answers with.
    struct Running: Sendable {
        /// `http://127.0.0.1:PORT`.
        var url: String
        /// The demo user's personal access token.
        var token: String
        var pid: Int32
    }

    /// Starts `pyat serve --demo --port 0 --data-dir TEMPORARY --log-level error` plus `arguments`,
    /// runs `body` with it, and stops it.
    static func with<Result: Sendable>(
        arguments: [String],
        _ body: (Running) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-serve-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments =
            ["serve", "--demo", "--port", "0", "--log-level", "error", "--data-dir", directory.path] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        var url: String?
        var token: String?
        var text = ""
        while url == nil || token == nil {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw CommandFailure("pyat serve ended before it listened") }
            text += String(decoding: chunk, as: UTF8.self)
            for line in text.split(separator: "\n") {
                if line.hasPrefix("export PYAT_SERVER=") {
                    url = String(line.dropFirst("export PYAT_SERVER=".count))
                }
                if line.hasPrefix("export PYAT_TOKEN=") {
                    token = String(line.dropFirst("export PYAT_TOKEN=".count))
                }
            }
        }
        guard let url, let token else { throw CommandFailure("pyat serve printed no URL") }
        return try await body(Running(url: url, token: token, pid: process.processIdentifier))
    }
}

/// The scale-out topology of `scripts/cluster` (PostgreSQL, N `pyat serve` instances of this very
/// binary, nginx in front), started for a benchmark and stopped on every path out of
/// ``with(script:instances:port:serveOptions:_:)`` — including SIGINT and SIGTERM, since the
/// instances run in sessions of their own and would outlive this process.
enum ClusterChild {
    /// A started cluster.
    struct Running: Sendable {
        /// nginx: `http://127.0.0.1:PORT`.
        var balancer: String
        /// Each instance directly: `http://127.0.0.1:PORT+K`.
        var instances: [String]
        /// A personal access token of the user the script registered.
        var token: String
        /// The script's state directory.
        var state: String
        /// The shared PostgreSQL's port (its role and password are `pyat`).
        var postgresPort: Int
    }

    /// The cluster that a signal handler stops, if one is running.
    private nonisolated(unsafe) static var stopOnSignal: (script: String, state: String)?
    private static let signalLock = NSLock()
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    /// `scripts/cluster` next to the working directory, else the repository this binary was built in
    /// (`.build*/CONFIGURATION/pyat` → the repository's `scripts/cluster`).
    static func locateScript(_ given: String?) throws -> String {
        if let given {
            guard FileManager.default.isExecutableFile(atPath: given) else {
                throw ValidationError("--cluster-script \(given) is not an executable file")
            }
            return given
        }
        var candidates = [FileManager.default.currentDirectoryPath + "/scripts/cluster"]
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(
            binary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("scripts/cluster").path
        )
        guard let script = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ValidationError(
                "scripts/cluster not found (looked in \(candidates.joined(separator: ", "))): run from the repository or give --cluster-script"
            )
        }
        return script
    }

    /// Starts `script start --durable --instances N --port P -- SERVE_OPTIONS` with this binary as
    /// the server, runs `body`, and stops the cluster.
    static func with<Result: Sendable>(
        script: String,
        instances: Int,
        port: Int,
        serveOptions: [String],
        _ body: (Running) async throws -> Result
    ) async throws -> Result {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let arguments =
            ["start", "--durable", "--instances", String(instances), "--port", String(port), "--"] + serveOptions
        let (status, output) = try run(script, arguments, environment: ["PYAT_BIN": binary])
        guard status == 0 else {
            throw CommandFailure("scripts/cluster start failed (exit \(status)):\n\(output)")
        }
        func value(_ prefix: String) -> String? {
            output.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        }
        guard let state = value("state directory: ") else {
            throw CommandFailure("scripts/cluster start printed no state directory:\n\(output)")
        }
        installSignalHandlers(script: script, state: state)
        defer { stop(script: script, state: state) }
        guard let token = value("export PYAT_TOKEN="),
            let environment = try? String(contentsOfFile: state + "/cluster.env", encoding: .utf8),
            let postgresPort = environment.split(separator: "\n").first(where: { $0.hasPrefix("PG_PORT=") })
                .flatMap({ Int($0.dropFirst("PG_PORT=".count)) })
        else { throw CommandFailure("scripts/cluster start printed no token or wrote no PG_PORT:\n\(output)") }
        let running = Running(
            balancer: "http://127.0.0.1:\(port)",
            instances: (1...instances).map { "http://127.0.0.1:\(port + $0)" },
            token: token,
            state: state,
            postgresPort: postgresPort
        )
        return try await body(running)
    }

    /// Runs SQL on the cluster's database with `psql` (role and password `pyat`), answering its output.
    static func psql(_ cluster: Running, _ sql: String) throws -> String {
        let candidates =
            ["/usr/bin/psql"]
            + ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).sorted().reversed()
            .map { "/usr/lib/postgresql/\($0)/bin/psql" }
        guard let psql = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CommandFailure("psql not found (apt-get install postgresql-client)")
        }
        let (status, output) = try run(
            psql,
            [
                "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(cluster.postgresPort),
                "-U", "pyat", "-d", "pyat_cluster", "-c", sql,
            ],
            environment: ["PGPASSWORD": "pyat", "PGCONNECT_TIMEOUT": "10"]
        )
        guard status == 0 else { throw CommandFailure("psql failed (exit \(status)): \(output)") }
        return output
    }

    private static func stop(script: String, state: String) {
        signalLock.withLock { stopOnSignal = nil }
        let (status, output) = (try? run(script, ["stop", state], environment: [:])) ?? (-1, "could not run")
        if status != 0 {
            FileHandle.standardError.write(Data("scripts/cluster stop \(state) failed (\(status)): \(output)\n".utf8))
        }
    }

    private static func installSignalHandlers(script: String, state: String) {
        signalLock.withLock {
            stopOnSignal = (script, state)
            guard signalSources.isEmpty else { return }
            for signal in [SIGINT, SIGTERM] {
                Glibc.signal(signal, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
                source.setEventHandler {
                    if let cluster = signalLock.withLock({ stopOnSignal }) {
                        FileHandle.standardError.write(Data("stopping the cluster…\n".utf8))
                        stop(script: cluster.script, state: cluster.state)
                    }
                    exit(130)
                }
                source.resume()
                signalSources.append(source)
            }
        }
    }

    /// Runs a program to its end, answering its exit status and its standard output and error.
    ///
    /// `posix_spawn` and `waitpid`, not Foundation's `Process`: the scripts leave daemons behind
    /// (the instances, nginx, PostgreSQL), and `Process.waitUntilExit` was seen never to return
    /// after such a script ended.
    private static func run(
        _ program: String,
        _ arguments: [String],
        environment: [String: String]
    ) throws -> (Int32, String) {
        // A file, not a pipe: the daemons keep the descriptors they inherit, and a pipe would then
        // never reach its end.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-bench-\(UUID()).log")
        defer { try? FileManager.default.removeItem(at: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, program, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw CommandFailure("cannot run \(program): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw CommandFailure("waiting for \(program) failed: errno \(errno)") }
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, text)
    }
}
