import Foundation
import Hummingbird
import Logging
import ReferenceServerTesting
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

#if canImport(Glibc)
import Glibc
#endif

/// What every instance of a drill's cluster shares, as `scripts/cluster` shares it: one PostgreSQL
/// database and the secrets (tokens signed by one instance are accepted by all, sealed values open on
/// all). `Codable`, so an exit test's child process receives it through its capture list.
struct ClusterSettings: Codable, Sendable {
    var host: String
    var port: Int
    var socketDirectory: String?
    var user: String
    var password: String?
    var database: String
    var tls: String
    var jwtSecret: String
    var storageSecret: String
    var poolSize: Int

    init(location: PostgresLocation, poolSize: Int = 8) {
        host = location.host
        port = location.port
        socketDirectory = location.socketDirectory
        user = location.user
        password = location.password
        database = location.database
        tls = location.tls.rawValue
        jwtSecret = Self.randomSecret()
        storageSecret = Self.randomSecret()
        self.poolSize = poolSize
    }

    var location: PostgresLocation {
        PostgresLocation(
            host: host,
            port: port,
            socketDirectory: socketDirectory,
            user: user,
            password: password,
            database: database,
            tls: PostgresLocation.TLSMode(rawValue: tls) ?? .prefer
        )
    }

    /// An instance's configuration: `scripts/cluster`'s (nginx on loopback is the trusted proxy),
    /// with cheap password hashing and auth throttles a test signing in from one address never reaches.
    /// The wall clock is the real one on every instance: they compare each other's timestamps
    /// (idempotency keys' ages).
    func configuration(dataDirectory: String) -> ServerConfiguration {
        var configuration = ServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            dataDirectory: dataDirectory,
            jwtSecret: jwtSecret,
            auth: .init(bcryptCost: 4, throttle: .forTests),
            trustedProxies: ["127.0.0.1"],
            durableCommits: false
        )
        configuration.database = .postgres(location, poolSize: poolSize)
        configuration.storageSecret = storageSecret
        // The drills expect a request during an outage answered within 20 s: a statement stuck on a
        // connection that died unnoticed gives up after 10 s here, not the default 30.
        configuration.databaseOperationTimeout = .seconds(10)
        return configuration
    }

    private static func randomSecret() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}

/// An instance run in the test process, on an ephemeral port: its store and realtime hub are at
/// hand (a drill reads its listen connection's backend).
struct LocalInstance: Sendable {
    let port: Int
    let services: ServerServices

    var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    /// The instance's PostgreSQL store.
    var store: PostgresStore {
        get throws { try #require(services.store as? PostgresStore) }
    }

    /// Runs `count` instances sharing `settings`, runs `body`, and stops them (gracefully, last
    /// started first), whether `body` returns or throws.
    static func withInstances<T: Sendable>(
        _ count: Int,
        settings: ClusterSettings,
        _ body: ([LocalInstance]) async throws -> T
    ) async throws -> T {
        try await withInstances(count, settings: settings, started: [], body)
    }

    private static func withInstances<T: Sendable>(
        _ count: Int,
        settings: ClusterSettings,
        started: [LocalInstance],
        _ body: ([LocalInstance]) async throws -> T
    ) async throws -> T {
        guard started.count < count else { return try await body(started) }
        return try await withInstance(settings: settings) { instance in
            try await withInstances(count, settings: settings, started: started + [instance], body)
        }
    }

    /// Runs one instance for the duration of `body`, then shuts it down gracefully.
    ///
    /// The server runs in a task of its own, not a child task: a server that cannot finish shutting
    /// down (a request hung on a dead database connection) is reported and abandoned after 30 s,
    /// rather than hanging the test run.
    static func withInstance<T: Sendable>(
        settings: ClusterSettings,
        _ body: (LocalInstance) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory(prefix: "pyat-drill-instance")
        defer { withExtendedLifetime(directory) {} }
        let services = try await ServerServices.open(
            configuration: settings.configuration(dataDirectory: directory.file("data")),
            logger: Harness.logger
        )
        let (ports, reportPort) = AsyncStream.makeStream(of: Int.self)
        let application = buildApplication(services: services) { port in
            reportPort.yield(port)
            reportPort.finish()
        }
        let group = ServiceGroup(configuration: .init(services: [application], logger: Harness.logger))
        let stopped = SetOnceFlag()
        let running = Task {
            // A server that fails before it listens ends the wait for its port.
            defer {
                reportPort.finish()
                stopped.set()
            }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await running.value
            throw ClusterInstanceError(message: "an instance stopped before it listened")
        }
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await body(LocalInstance(port: port, services: services)))
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        let shutDown = (try? await Drill.eventually(within: .seconds(30)) { stopped.isSet }) ?? false
        if !shutDown {
            Issue.record("the instance on port \(port) did not shut down within 30 s (requests in flight?): abandoned")
            running.cancel()
        }
        return try outcome.get()
    }
}

struct ClusterInstanceError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// An instance in a process of its own — an exit test's child — so a drill can kill it with SIGKILL.
///
/// The child (``serveUntilKilled(settings:directory:parent:)``) writes `PID PORT` to a file in
/// `directory` once it listens; the parent reads it (``started(timeout:)``) and kills the pid. So that
/// a child never outlives its test, it also ends by itself when the test process is gone, when the
/// parent leaves a `stop` file (a path that never learned the pid), or after ten minutes.
final class ChildInstance: Sendable {
    let directory: String
    private let state = Mutex<State>(State())

    private struct State {
        var pid: pid_t?
        var killed = false
        var exited = false
    }

    init(directory: String) {
        self.directory = directory
    }

    private var startedFile: String { directory + "/instance" }
    private var stopFile: String { directory + "/stop" }

    // MARK: In the child

    /// Serves on an ephemeral port until the process is killed.
    static func serveUntilKilled(settings: ClusterSettings, directory: String, parent: Int32) async throws {
        let startedFile = directory + "/instance"
        let stopFile = directory + "/stop"
        let watchdog = Thread {
            let deadline = Date().addingTimeInterval(600)
            while true {
                Thread.sleep(forTimeInterval: 0.2)
                if getppid() != parent || FileManager.default.fileExists(atPath: stopFile) || Date() > deadline {
                    _exit(70)
                }
            }
        }
        watchdog.start()
        let services = try await ServerServices.open(
            configuration: settings.configuration(dataDirectory: directory + "/data"),
            logger: Harness.logger
        )
        let application = buildApplication(services: services) { port in
            // Written whole and renamed into place: the parent never reads half a line.
            try? "\(getpid()) \(port)\n".write(toFile: startedFile, atomically: true, encoding: .utf8)
        }
        try await application.runService()
    }

    // MARK: In the parent

    /// Notes that the child process ended (its exit test returned): a wait for it to start ends.
    func noteExited() {
        state.withLock { $0.exited = true }
    }

    /// Waits until the child listens; answers its pid and port.
    func started(timeout: Duration = .seconds(120)) async throws -> (pid: pid_t, port: Int) {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let text = try? String(contentsOfFile: startedFile, encoding: .utf8) {
                let parts = text.split(whereSeparator: \.isWhitespace)
                if parts.count == 2, let pid = pid_t(parts[0]), let port = Int(parts[1]) {
                    state.withLock { $0.pid = pid }
                    return (pid, port)
                }
            }
            if state.withLock({ $0.exited }) {
                throw ClusterInstanceError(message: "the child instance exited before it listened")
            }
            guard ContinuousClock.now < deadline else {
                throw ClusterInstanceError(message: "the child instance did not listen within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Kills the child with SIGKILL: the fault.
    func kill() {
        state.withLock { state in
            guard let pid = state.pid, !state.killed, !state.exited else { return }
            state.killed = true
            _ = Glibc.kill(pid, SIGKILL)
        }
    }

    /// Ends the child on every path: SIGKILL when its pid is known, else the `stop` file its
    /// watchdog looks for.
    func stop() {
        let known = state.withLock { $0.pid != nil }
        if known {
            kill()
        } else {
            _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
        }
    }
}
