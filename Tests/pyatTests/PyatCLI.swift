import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

/// What one run of the `pyat` binary did.
struct PyatRun: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    /// Standard output parsed as JSON.
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8))
    }

    /// Standard output parsed as a JSON object.
    func jsonObject() throws -> [String: Any] {
        try #require(try json() as? [String: Any], "not a JSON object: \(stdout)")
    }

    /// Standard output parsed as a JSON array of objects.
    func jsonArray() throws -> [[String: Any]] {
        try #require(try json() as? [[String: Any]], "not a JSON array of objects: \(stdout)")
    }
}

/// A running test server with demo data, a throwaway config directory, and a way to run `pyat`
/// against them.
struct CLIFixture: Sendable {
    let server: TestServer
    let demo: DemoCredentials
    /// `XDG_CONFIG_HOME` of every run: where `pyat login` saves credentials.
    let configHome: URL

    var credentialsFile: URL { configHome.appendingPathComponent("pyat/credentials.json") }
    /// `XDG_CACHE_HOME` of every run: where the CLI keeps its cache.
    var cacheHome: URL { configHome.appendingPathComponent("cache") }

    /// Starts a server with demo data, runs `body`, then stops it and deletes the config directory.
    static func with(_ body: @Sendable (CLIFixture) async throws -> Void) async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let configHome = FileManager.default.temporaryDirectory
                .appendingPathComponent("pyat-cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: configHome, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: configHome) }
            try await body(CLIFixture(server: server, demo: demo, configHome: configHome))
        }
    }

    /// Runs `pyat arguments` with `PYAT_SERVER` set to the test server and, when `authenticated`,
    /// `PYAT_TOKEN` set to the demo token.
    func pyat(_ arguments: [String], authenticated: Bool = true, stdin: String? = nil) async throws -> PyatRun {
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_SERVER"] = server.url
        environment["PYAT_TOKEN"] = authenticated ? demo.token : nil
        environment["XDG_CONFIG_HOME"] = configHome.path
        environment["XDG_CACHE_HOME"] = cacheHome.path
        return try await PyatProcess.run(arguments, environment: environment, stdin: stdin)
    }

    /// A client of the test server as the demo user, to set up and check what the CLI did.
    func withClient<T>(_ body: (PyAirtableClient) async throws -> T) async throws -> T {
        let url = try #require(URL(string: server.url))
        let configuration = PyAirtableClient.Configuration(
            serverURL: url,
            credentials: .personalAccessToken(demo.token)
        )
        return try await withPyAirtableClient(configuration: configuration, body)
    }

    /// The demo "Projects" table (Name, Status, Score, Due, Owner, Tags, Shipped; 8 records).
    func projectsTable() async throws -> Table {
        try await demoTable(named: "Projects")
    }

    /// A table of the demo base: "Projects", or "Tasks" (Title, Project, Estimate, Notes, Done; 20 records).
    func demoTable(named name: String) async throws -> Table {
        let workspace = try #require(demo.workspaceID)
        return try await withClient { client in
            let base = try #require(try await client.bases.list(in: workspace).first)
            return try #require(try await client.tables.list(in: base.id).first { $0.name == name })
        }
    }
}

/// Runs the `pyat` binary built next to the tests as a child process.
enum PyatProcess {
    /// A run that did not end within its time limit; the child was killed.
    struct TimedOut: Error, CustomStringConvertible {
        var arguments: [String]
        var limit: Duration
        var stderr: String
        var description: String {
            "\(arguments.joined(separator: " ")) ran past \(limit) and was killed; stderr: \(stderr)"
        }
    }

    /// Runs `pyat arguments`. A run still going after `timeout` (sized for a loaded machine: no
    /// command of the tests takes more than seconds on an idle one) is killed and throws
    /// ``TimedOut``, as does a cancelled caller, so no child outlives its test.
    static func run(
        _ arguments: [String],
        environment: [String: String],
        stdin: String? = nil,
        timeout: Duration = .seconds(300)
    ) async throws -> PyatRun {
        try await run(
            executable: PyatBinary.url.path,
            arguments,
            environment: environment,
            stdin: stdin,
            timeout: timeout
        )
    }

    /// Runs `executable arguments`, standard output and error captured in files.
    static func run(
        executable: String,
        _ arguments: [String],
        environment: [String: String],
        stdin: String? = nil,
        timeout: Duration = .seconds(300)
    ) async throws -> PyatRun {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stdoutURL = directory.appendingPathComponent("stdout")
        let stderrURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        var stdinPath: String?
        if let stdin {
            let url = directory.appendingPathComponent("stdin")
            try Data(stdin.utf8).write(to: url)
            stdinPath = url.path
        }
        let process = try ChildProcess(
            executable: executable,
            arguments: arguments,
            environment: environment,
            stdinPath: stdinPath,
            stdoutPath: stdoutURL.path,
            stderrPath: stderrURL.path
        )
        let status = await process.wait(timeout: timeout)
        let stderr = String(decoding: (try? Data(contentsOf: stderrURL)) ?? Data(), as: UTF8.self)
        guard let status, !Task.isCancelled else {
            throw TimedOut(arguments: [executable] + arguments, limit: timeout, stderr: stderr)
        }
        return PyatRun(
            status: status,
            stdout: String(decoding: try Data(contentsOf: stdoutURL), as: UTF8.self),
            stderr: stderr
        )
    }
}

/// A small RFC 4180 reader: quoted fields with doubled quotes, commas and line breaks inside.
enum CSVReader {
    static func rows(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var characters = Array(text.unicodeScalars)[...]
        while let character = characters.popFirst() {
            if quoted {
                if character == "\"" {
                    if characters.first == "\"" {
                        field.unicodeScalars.append("\"")
                        characters.removeFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    field.unicodeScalars.append(character)
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                row.append(field)
                field = ""
            } else if character == "\r" || character == "\n" {
                if character == "\r", characters.first == "\n" { characters.removeFirst() }
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            } else {
                field.unicodeScalars.append(character)
            }
        }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}
