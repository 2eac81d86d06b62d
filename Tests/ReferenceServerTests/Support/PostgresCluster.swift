import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

@testable import ReferenceServer

/// The PostgreSQL server the tests use, and a fresh database of its own for each test.
///
/// `PYAT_TEST_POSTGRES_URL` names a server whose user may create databases (`.ci/run` starts one with
/// `scripts/postgres.sh`). Without it, the first test that needs PostgreSQL starts a private cluster
/// with that same script (PostgreSQL 15 is installed on these machines), and a detached watcher
/// stops and removes it once the test process has exited, however it exits.
actor PostgresCluster {
    static let shared = PostgresCluster()

    /// The server, found or being started: one task, so tests asking at once (the actor is reentrant
    /// across the start's suspension) share one cluster.
    private var base: Task<PostgresLocation, any Error>?

    /// The server every test database is made on.
    func location() async throws -> PostgresLocation {
        if let base { return try await base.value }
        let task = Task<PostgresLocation, any Error> {
            let environment = ProcessInfo.processInfo.environment
            if let url = environment["PYAT_TEST_POSTGRES_URL"], !url.isEmpty {
                return try PostgresLocation(url: url)
            }
            return try await Self.startPrivateCluster()
        }
        base = task
        return try await task.value
    }

    /// The repository's root, where `scripts/postgres.sh` is.
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }

    private static func startPrivateCluster() async throws -> PostgresLocation {
        let script = repositoryRoot + "/scripts/postgres.sh"
        let port = 56_000 + Int(getpid() % 4000)
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_POSTGRES_PORT"] = String(port)
        let errors = NSTemporaryDirectory() + "pyat-postgres-start-\(getpid()).log"
        let printed = NSTemporaryDirectory() + "pyat-postgres-start-\(getpid()).out"
        defer {
            unlink(errors)
            unlink(printed)
        }
        // Its output goes to a file, read once it ended: a blocking read of a pipe would hold one of
        // the few threads every test's tasks share for as long as the start takes.
        let child = try ChildProcess(
            executable: "/bin/bash",
            arguments: [script, "start"],
            environment: environment,
            stdoutPath: printed,
            stderrPath: errors
        )
        let status = await child.wait(timeout: .seconds(120))
        let text = (try? String(contentsOfFile: printed, encoding: .utf8)) ?? ""
        var url: String?
        var directory: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("export PYAT_TEST_POSTGRES_URL=") {
                url = String(line.dropFirst("export PYAT_TEST_POSTGRES_URL=".count))
            }
            if line.hasPrefix("export PYAT_POSTGRES_DIRECTORY=") {
                directory = String(line.dropFirst("export PYAT_POSTGRES_DIRECTORY=".count))
            }
        }
        guard status == 0, let url, let directory else {
            throw ClusterError(
                message: """
                    could not start a PostgreSQL cluster with scripts/postgres.sh (status \(status.map(String.init) ?? "timeout")); \
                    install PostgreSQL (apt-get install postgresql) or set PYAT_TEST_POSTGRES_URL. Its errors: \
                    \((try? String(contentsOfFile: errors, encoding: .utf8))?.suffix(2000) ?? "none")
                    """
            )
        }
        // Detached (its own session, its parent gone at once), so nothing the test process does at
        // exit reaches it: it outlives the test process by at most a second.
        let watcher = try ChildProcess(
            executable: "/bin/bash",
            arguments: [
                "-c",
                """
                setsid bash -c 'while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \
                "\(script)" stop "\(directory)"' </dev/null >/dev/null 2>&1 &
                """,
            ],
            environment: environment
        )
        _ = await watcher.wait(timeout: .seconds(10))
        return try PostgresLocation(url: url)
    }

    struct ClusterError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    // MARK: Databases

    /// Limits how many PostgreSQL-backed servers the suite runs at once.
    static let serverTurns = Turns(limit: 12)

    /// A counting semaphore for async work; a cancelled waiter gives up its place.
    actor Turns {
        private let limit: Int
        private var running = 0
        private var waiting: [CheckedContinuation<Void, Never>] = []

        init(limit: Int) { self.limit = limit }

        func withTurn<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
            if running >= limit {
                await withCheckedContinuation { waiting.append($0) }
            } else {
                running += 1
            }
            defer { release() }
            return try await body()
        }

        private func release() {
            if waiting.isEmpty {
                running -= 1
            } else {
                waiting.removeFirst().resume()
            }
        }
    }

    /// The database of a server's data directory, made on first use and named in a file there, so a
    /// server restarted on the same directory finds its data (the cluster is temporary: databases
    /// go with it).
    static func database(for dataDirectory: String) async throws -> PostgresLocation {
        let base = try await shared.location()
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        let marker = (dataDirectory as NSString).appendingPathComponent("postgres-test-database")
        if let name = try? String(contentsOfFile: marker, encoding: .utf8), !name.isEmpty {
            return base.with(database: name)
        }
        let name = "pyat_s_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try await administer(base) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        try name.write(toFile: marker, atomically: true, encoding: .utf8)
        return base.with(database: name)
    }

    /// Creates an empty database, runs `body` with its location, and drops it.
    static func withDatabase<T: Sendable>(_ body: (PostgresLocation) async throws -> T) async throws -> T {
        let base = try await shared.location()
        let name = "pyat_t_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        try await administer(base) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        }
        do {
            let value = try await body(base.with(database: name))
            try await drop(name, on: base)
            return value
        } catch {
            try? await drop(name, on: base)
            throw error
        }
    }

    /// Drops a test's database, its connections with it. `FORCE` refuses (42501) while an autovacuum
    /// worker is in the database, which a non-superuser may not end: the worker is soon done, so the
    /// drop is tried again, up to 20 times 250 ms apart.
    private static func drop(_ name: String, on base: PostgresLocation) async throws {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await administer(base) { client in
                    try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
                }
                return
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42501" && attempt < 20 {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    private static func administer(
        _ location: PostgresLocation,
        _ body: @escaping @Sendable (PostgresClient) async throws -> Void
    ) async throws {
        let client = PostgresClient(
            configuration: location.clientConfiguration(maximumConnections: 1),
            backgroundLogger: Harness.logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }

    /// Opens `instances` stores on one fresh database (as that many `pyat serve` instances would),
    /// runs `body`, and closes them.
    static func withStores<T: Sendable>(
        instances: Int = 1,
        configure: @Sendable (PostgresLocation) -> PostgresLocation = { $0 },
        _ body: ([PostgresStore]) async throws -> T
    ) async throws -> T {
        try await withDatabase { location in
            var databases: [PostgresServerDatabase] = []
            do {
                for _ in 0..<instances {
                    databases.append(
                        try await PostgresServerDatabase(
                            location: configure(location),
                            maximumConnections: 8,
                            keys: StorageKeys(secret: Array(repeating: 7, count: 32)),
                            logger: Harness.logger
                        )
                    )
                }
                let stores = databases.map { PostgresStore(database: $0, logger: Harness.logger) }
                let value = try await body(stores)
                for database in databases { await database.close() }
                return value
            } catch {
                for database in databases { await database.close() }
                throw error
            }
        }
    }
}
