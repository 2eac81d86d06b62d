import ArgumentParser
import Foundation
import Logging
import PyAirtableClient
import PyAirtableModels

/// How command output is written to standard output.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// Aligned columns, for a person.
    case table
    /// The wire JSON of the resource, or a JSON array of a list: stable, for scripts.
    case json
    /// One JSON object per line.
    case ndjson
    /// RFC 4180 CSV with a header row.
    case csv
}

/// The options of every command that talks to a server, credentials aside: `--server`, `--format`, `-v`.
struct ServerOptions: ParsableArguments {
    /// The server used when neither `--server` nor `PYAT_SERVER` says.
    static let defaultServer = "http://127.0.0.1:8080"

    @Option(help: "The server URL (default: $PYAT_SERVER, else \(ServerOptions.defaultServer)).")
    var server: String?

    @Option(help: "Output format: table, json, ndjson or csv.")
    var format: OutputFormat = .table

    @Flag(name: .shortAndLong, help: "Log each request (method, path, status, time; never secrets) to standard error.")
    var verbose = false

    @Flag(help: "Answer reads from the local cache only, without contacting the server.")
    var offline = false

    @Flag(name: .customLong("no-cache"), help: "Neither read nor keep the local cache ($XDG_CACHE_HOME/pyat).")
    var noCache = false

    func validate() throws {
        _ = try resolvedServerURL()
        if offline && noCache { throw ValidationError("--offline reads the cache, so it cannot go with --no-cache") }
    }

    /// The CLI's offline queue (`$XDG_CACHE_HOME/pyat/queue.sqlite`): writes that cannot reach the
    /// server are kept there (exit status 3) until `pyat queue replay`; with `--offline` they go there
    /// without trying the server.
    var offlineSettings: PyAirtableClient.OfflineSettings {
        var settings = PyAirtableClient.OfflineSettings.persistent()
        settings.queueWithoutTrying = offline
        // A command is short-lived: `pyat queue replay` sends the queue, not a background task.
        settings.replaysAutomatically = false
        return settings
    }

    /// The cache of the CLI: the shared file in `$XDG_CACHE_HOME/pyat`. Reads ask the server first (so a
    /// person sees current data, revalidated with ETags) and fall back to the cache when the server
    /// cannot be reached; `--offline` reads the cache only.
    var cacheSettings: PyAirtableClient.CacheSettings {
        guard !noCache else { return .disabled }
        var settings = PyAirtableClient.CacheSettings.persistent()
        for kind in PyAirtableClient.CachedResource.allCases {
            settings.rules[kind]?.policy = offline ? .cacheOnly : .networkFirst
        }
        return settings
    }

    /// The server from `--server`, `PYAT_SERVER` or the default, without a trailing slash so that
    /// credentials saved for `http://host:8080/` also serve `http://host:8080`.
    func resolvedServerURL() throws -> URL {
        let environment = ProcessInfo.processInfo.environment["PYAT_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        var text = server ?? environment ?? Self.defaultServer
        while text.hasSuffix("/") { text.removeLast() }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            url.host?.isEmpty == false
        else {
            let origin = server != nil ? "--server" : "PYAT_SERVER"
            throw ValidationError(
                "\(origin) must be an http or https URL, such as \(Self.defaultServer); got '\(text)'"
            )
        }
        return url
    }

    /// The logger handed to the client: requests at debug level on standard error with `-v`, else nothing.
    var logger: Logger {
        guard verbose else { return Logger(label: "pyat.client") { _ in SwiftLogNoOpLogHandler() } }
        var logger = Logger(label: "pyat.client") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .debug
        return logger
    }

    /// Where command output goes, in the chosen format.
    var output: OutputWriter { OutputWriter(format: format) }

    /// Runs `body` with a client for this server, then shuts the client down. A ``PyAirtableError``
    /// becomes a ``CommandFailure``: one `error:` line, and exit status 4 for a conflict, else 1.
    func withClient<Result>(
        credentials: PyAirtableClient.Credentials,
        realtime: RealtimeSettings = RealtimeSettings(),
        _ body: (PyAirtableClient) async throws -> Result
    ) async throws -> Result {
        let serverURL = try resolvedServerURL()
        var configuration = PyAirtableClient.Configuration(
            serverURL: serverURL,
            credentials: credentials,
            logger: logger,
            userAgent: "pyat-cli/\(PyAirtableClient.version)",
            cache: cacheSettings,
            realtime: realtime,
            offline: offlineSettings
        )
        // A conflict settled by a strategy (not thrown) is said on standard error, never silent.
        configuration.conflicts.onConflict = { report in
            guard report.outcome != .thrown, report.outcome != .failed else { return }
            FileHandle.standardError.write(Data((ConflictNotice.line(for: report) + "\n").utf8))
        }
        do {
            return try await withPyAirtableClient(configuration: configuration, body)
        } catch let error as PyAirtableError {
            if verbose { logger.debug("failed", metadata: ["error": "\(error)"]) }
            throw CommandFailure(error, server: serverURL)
        }
    }
}

/// The options of every command that talks to a server: ``ServerOptions`` and `--token`.
struct GlobalOptions: ParsableArguments {
    @OptionGroup var connection: ServerOptions

    @Option(
        help: ArgumentHelp(
            "A personal access token (pat_…) or an access token (default: $PYAT_TOKEN, else the saved login).",
            valueName: "token"
        )
    )
    var token: String?

    var output: OutputWriter { connection.output }
    var format: OutputFormat { connection.format }

    /// `--token`, else `PYAT_TOKEN`, else the credentials `pyat login` saved in
    /// `$XDG_CONFIG_HOME/pyat/credentials.json`.
    var credentials: PyAirtableClient.Credentials {
        let environment = ProcessInfo.processInfo.environment["PYAT_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if let token = token ?? environment { return .personalAccessToken(token) }
        return .store(FileTokenStore())
    }

    /// Runs `body` with a client for the chosen server and credentials; see ``ServerOptions/withClient(credentials:_:)``.
    func withClient<Result>(
        realtime: RealtimeSettings = RealtimeSettings(),
        _ body: (PyAirtableClient) async throws -> Result
    ) async throws -> Result {
        try await connection.withClient(credentials: credentials, realtime: realtime, body)
    }
}
