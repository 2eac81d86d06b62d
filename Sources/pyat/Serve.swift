import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PyAirtableClient
import PyAirtableModels
import ReferenceServer

extension Pyat {
    /// `pyat serve`: the reference server on embedded SQLite.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the reference server (SQLite in the data directory, or a shared PostgreSQL).",
            discussion: """
                With --demo, seeds a demo user, a workspace with a base and two tables of sample records,
                and prints the lines to paste into a shell to point the CLI and the SDK at this server.
                """
        )

        @Option(help: "The address to listen on.")
        var host: String = "127.0.0.1"

        @Option(help: "The port to listen on (0 picks a free one).")
        var port: Int = 8080

        @Option(
            name: .customLong("data-dir"),
            help: "Where the database, files and secrets live (made private to this user: 0700, files 0600)."
        )
        var dataDirectory: String = "./pyat-data"

        @Option(
            name: .customLong("database"),
            help: ArgumentHelp(
                "A PostgreSQL database several instances share: postgres://USER@HOST:PORT/DATABASE (default: SQLite in --data-dir).",
                discussion: """
                    Also PYAT_DATABASE_URL. Keep the password out of the command line: PGPASSWORD supplies it. \
                    Instances sharing a database must share PYAT_JWT_SECRET, PYAT_STORAGE_SECRET and --files-dir.
                    """
            )
        )
        var database: String?

        @Option(
            name: .customLong("database-pool-size"),
            help: "PostgreSQL connections this instance may open (one writes at a time; the rest read)."
        )
        var databasePoolSize: Int = 16

        @Option(
            name: .customLong("database-timeout"),
            help: ArgumentHelp(
                "Seconds a PostgreSQL statement may go unanswered before its requests answer 503.",
                discussion: """
                    With Retry-After; the connection is then closed (PostgreSQL rolls back what it had not \
                    committed), so a statement stuck behind a lock or on a connection that died unnoticed \
                    never holds a request. Waiting for a connection has its own 5 s.
                    """
            )
        )
        var databaseTimeout: Int = 30

        @Option(
            help: ArgumentHelp(
                "Event-loop threads, which also run the server's tasks (default: one per core).",
                discussion: """
                    Several instances on one machine share its cores: give each its share (cores ÷ \
                    instances, at least 1), as scripts/cluster does. Threads beyond the cores an \
                    instance gets only add hand-offs between them.
                    """
            )
        )
        var threads: Int?

        @Option(
            name: .customLong("files-dir"),
            help: "Where uploaded files' bytes live (default: blobs in --data-dir); a directory every instance mounts."
        )
        var filesDirectory: String?

        @Flag(help: "Seed demo data and print a ready-to-use token.")
        var demo = false

        @Option(name: .customLong("max-body-size"), help: "The largest request body accepted, in bytes.")
        var maximumBodySize: Int = 4 * 1024 * 1024

        @Option(
            name: .customLong("max-file-size"),
            help: "The largest file upload accepted, in bytes (uploads stream to disk)."
        )
        var maximumFileSize: Int64 = 1 << 30

        @Option(
            name: .customLong("upload-quota"),
            help: "The most bytes of files one user may have uploaded (existing files count; 0: no quota)."
        )
        var uploadQuota: Int64 = 10 << 30

        @Option(
            name: .customLong("max-realtime-connections-per-user"),
            help: "The most WebSocket and SSE connections one user may hold open (polling is not counted)."
        )
        var maximumRealtimeConnectionsPerUser: Int = 64

        @Option(
            name: .customLong("realtime-buffer-bytes"),
            help: "The bytes of events held for one realtime connection before a slow consumer is cut off."
        )
        var realtimeBufferBytes: Int = 4 << 20

        @Option(
            name: .customLong("operator"),
            help: "A user id (usr…) allowed to read server-wide counts (GET /api/v1/stats?scope=server); repeatable."
        )
        var operators: [UserID] = []

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
        var logLevel: String = "info"

        @Option(name: .customLong("log-format"), help: "text, or json for one JSON object per line.")
        var logFormat: String = "text"

        @Flag(
            name: .customLong("no-fsync"),
            help: "Acknowledge commits before they reach the disk (faster, not durable)."
        )
        var noFsync = false

        @Option(
            name: .customLong("record-cache-size"),
            help: "Memory for recently read records, answered without the database, in bytes (0: off)."
        )
        var recordCacheSize: Int = 32 << 20

        @Option(
            name: .customLong("max-formula-length"),
            help: "The longest filter formula accepted, in characters (422 past it)."
        )
        var maximumFormulaLength: Int = Formula.Limits.defaultMaximumLength

        @Option(
            name: .customLong("max-formula-depth"),
            help: "The deepest nesting of a filter formula accepted (422 past it)."
        )
        var maximumFormulaDepth: Int = Formula.Limits.defaultMaximumDepth

        @Option(
            name: .customLong("max-filter-scan-rows"),
            help: "Rows a records list may read evaluating a filter part SQLite cannot run (422 past it)."
        )
        var maximumFilterScanRows: Int = RequestLimits().maximumFilterScanRows

        @Option(
            name: .customLong("max-filter-scan-seconds"),
            help: "Seconds a records list may spend on such a scan (422 past it)."
        )
        var maximumFilterScanSeconds: Double = 10

        @Option(
            name: .customLong("max-request-head-size"),
            help: "The longest request line plus headers, in bytes (431 past it)."
        )
        var maximumRequestHeadSize: Int = RequestLimits().maximumRequestHeadSize

        @Flag(name: .customLong("no-websocket"), help: "Refuse WebSocket upgrades (clients fall back to SSE).")
        var noWebSocket = false

        @Flag(name: .customLong("no-sse"), help: "Turn off Server-Sent Events (clients fall back to polling).")
        var noServerSentEvents = false

        @Flag(
            name: .customLong("webhooks-allow-private"),
            help: "Let webhooks target loopback and private-network addresses (off: refused, against request forgery)."
        )
        var webhooksAllowPrivate = false

        @Option(
            name: .customLong("trusted-proxy"),
            help: ArgumentHelp(
                "A reverse proxy's address whose X-Forwarded-For names the client (repeatable).",
                discussion: "Without one, X-Forwarded-For is ignored: the connection's address is the client."
            )
        )
        var trustedProxies: [String] = []

        @Option(
            name: .customLong("auth-attempts-per-account"),
            help: "Sign-in and registration attempts one account may make in 5 minutes (failures count)."
        )
        var authAttemptsPerAccount: Int = 10

        @Option(
            name: .customLong("auth-attempts-per-address"),
            help: "Sign-in and registration attempts one client address may make in a minute."
        )
        var authAttemptsPerAddress: Int = 30

        @Option(
            name: .customLong("password-hash-threads"),
            help: "Threads that hash passwords, apart from those serving requests (default: half the cores)."
        )
        var passwordHashThreads: Int = PasswordHashingConfiguration().threads

        @Option(
            name: .customLong("password-hash-queue"),
            help: "Password checks that may wait or run at once; past it sign-ins get 503 with Retry-After."
        )
        var passwordHashQueue: Int = PasswordHashingConfiguration().maximumPending

        @Flag(
            name: .customLong("airtable-limits"),
            help: ArgumentHelp(
                "Enforce Airtable's rate limit under /v0: 5 requests a second per base, then 429 with Retry-After.",
                discussion: "Without it, only Airtable's sizes apply (10 records a write, 100 a page)."
            )
        )
        var airtableLimits = false

        @Flag(
            name: .customLong("downloads-allow-private"),
            help: "Let attachments named by URL come from loopback and private-network addresses (off: refused)."
        )
        var downloadsAllowPrivate = false

        @Option(
            name: .customLong("public-url"),
            help: "The origin attachment URLs start with, behind a proxy (default: http:// and the request's Host)."
        )
        var publicURL: String?

        @Option(
            name: .customLong("mirror"),
            help: ArgumentHelp(
                "Mirror bases of this Airtable API (https://api.airtable.com, or another pyat serve), read-only here.",
                discussion: """
                    The upstream's token comes from PYAT_MIRROR_TOKEN, never from the command line. Each base \
                    (--mirror-base) is synced in full at start and on POST /api/v1/mirror/refresh (pyat mirror \
                    refresh); a sync that fails part-way leaves the previous snapshot serving.
                    """
            )
        )
        var mirror: String?

        @Option(name: .customLong("mirror-base"), help: "A base to mirror (app…), by its upstream id; repeatable.")
        var mirrorBases: [String] = []

        @Option(
            name: .customLong("mirror-owner"),
            help: ArgumentHelp(
                "The local user (usr… or an email) who owns the mirrored bases' workspaces here.",
                discussion: "With --demo, the demo user by default. An email may be registered after the server starts."
            )
        )
        var mirrorOwner: String?

        @Option(
            name: .customLong("mirror-rate"),
            help: "Requests a second to one upstream base (Airtable allows 5)."
        )
        var mirrorRate: Double = 5

        func validate() throws {
            if let mirror {
                guard let url = URL(string: mirror), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                    url.host != nil
                else { throw ValidationError("--mirror takes an http(s) URL, not '\(mirror)'") }
                guard !mirrorBases.isEmpty else {
                    throw ValidationError("--mirror needs at least one --mirror-base app…")
                }
                for base in mirrorBases where BaseID(base) == nil {
                    throw ValidationError("--mirror-base takes a base id (app…), not '\(base)'")
                }
                if let mirrorOwner {
                    guard UserID(mirrorOwner) != nil || mirrorOwner.contains("@") else {
                        throw ValidationError("--mirror-owner takes a user id (usr…) or an email, not '\(mirrorOwner)'")
                    }
                } else if !demo {
                    throw ValidationError(
                        "--mirror needs --mirror-owner usr…|EMAIL (the local user who owns the mirrored bases)"
                    )
                }
                guard ProcessInfo.processInfo.environment["PYAT_MIRROR_TOKEN"].map({ !$0.isEmpty }) ?? false else {
                    throw ValidationError("--mirror needs the upstream's token in PYAT_MIRROR_TOKEN")
                }
            } else if !mirrorBases.isEmpty || mirrorOwner != nil {
                throw ValidationError("--mirror-base and --mirror-owner go with --mirror URL")
            }
            guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
            if let threads, !(1...256).contains(threads) {
                throw ValidationError("--threads must be from 1 to 256")
            }
            guard maximumBodySize >= 1024 else { throw ValidationError("--max-body-size must be at least 1024") }
            guard recordCacheSize >= 0 else { throw ValidationError("--record-cache-size must not be negative") }
            guard maximumFileSize >= 0 else { throw ValidationError("--max-file-size must not be negative") }
            guard maximumFormulaLength >= 1 else { throw ValidationError("--max-formula-length must be at least 1") }
            guard maximumFormulaDepth >= 1 else { throw ValidationError("--max-formula-depth must be at least 1") }
            guard maximumFilterScanRows >= 1 else { throw ValidationError("--max-filter-scan-rows must be at least 1") }
            guard maximumFilterScanSeconds > 0, maximumFilterScanSeconds.isFinite else {
                throw ValidationError("--max-filter-scan-seconds must be more than 0")
            }
            guard maximumRequestHeadSize >= 1024 else {
                throw ValidationError("--max-request-head-size must be at least 1024")
            }
            guard authAttemptsPerAccount >= 1, authAttemptsPerAddress >= 1 else {
                throw ValidationError("--auth-attempts-per-account and --auth-attempts-per-address must be at least 1")
            }
            guard passwordHashThreads >= 1, passwordHashQueue >= 1 else {
                throw ValidationError("--password-hash-threads and --password-hash-queue must be at least 1")
            }
            if let url = database ?? ProcessInfo.processInfo.environment["PYAT_DATABASE_URL"], !url.isEmpty {
                do {
                    _ = try PostgresLocation(url: url)
                } catch let error as ServerConfigurationError {
                    throw ValidationError(error.message)
                }
            }
            do {
                try serverConfiguration.validate()
            } catch let error as ServerConfigurationError {
                throw ValidationError(error.message)
            }
            guard uploadQuota >= 0 else { throw ValidationError("--upload-quota must not be negative") }
            guard (2...1000).contains(databasePoolSize) else {
                throw ValidationError("--database-pool-size must be from 2 to 1000")
            }
            guard (1...3600).contains(databaseTimeout) else {
                throw ValidationError("--database-timeout must be from 1 to 3600 seconds")
            }
            guard maximumRealtimeConnectionsPerUser >= 1 else {
                throw ValidationError("--max-realtime-connections-per-user must be at least 1")
            }
            guard realtimeBufferBytes >= 1024 else {
                throw ValidationError("--realtime-buffer-bytes must be at least 1024")
            }
            guard ["text", "json"].contains(logFormat) else {
                throw ValidationError("--log-format must be text or json")
            }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
            }
        }

        /// The server's configuration from the options and the environment.
        var serverConfiguration: ServerConfiguration {
            var configuration = ServerConfiguration(
                host: host,
                port: port,
                dataDirectory: dataDirectory,
                maximumBodySize: maximumBodySize,
                maximumFileSize: maximumFileSize,
                uploadQuotaBytes: uploadQuota,
                operatorUserIDs: Set(operators),
                jwtSecret: ProcessInfo.processInfo.environment["PYAT_JWT_SECRET"],
                trustedProxies: trustedProxies,
                durableCommits: !noFsync,
                recordCacheBytes: recordCacheSize
            )
            let environment = ProcessInfo.processInfo.environment
            if let url = database ?? environment["PYAT_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }),
                let location = try? PostgresLocation(url: url)
            {
                configuration.database = .postgres(location, poolSize: databasePoolSize)
                configuration.databaseOperationTimeout = .seconds(databaseTimeout)
            }
            configuration.storageSecret = environment["PYAT_STORAGE_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
            configuration.filesDirectory = filesDirectory
            configuration.limits.formula.maximumLength = maximumFormulaLength
            configuration.limits.formula.maximumDepth = maximumFormulaDepth
            configuration.limits.maximumFilterScanRows = maximumFilterScanRows
            configuration.limits.maximumFilterScanDuration = .milliseconds(Int64(maximumFilterScanSeconds * 1000))
            configuration.limits.maximumRequestHeadSize = maximumRequestHeadSize
            configuration.auth.throttle.signInPerAccount.attempts = authAttemptsPerAccount
            configuration.auth.throttle.signInPerAddress.attempts = authAttemptsPerAddress
            configuration.auth.passwordHashing = .init(threads: passwordHashThreads, maximumPending: passwordHashQueue)
            configuration.realtime.maximumConnectionsPerUser = maximumRealtimeConnectionsPerUser
            configuration.realtime.maximumBufferedBytes = realtimeBufferBytes
            configuration.realtime.webSocketEnabled = !noWebSocket
            configuration.realtime.serverSentEventsEnabled = !noServerSentEvents
            configuration.airtable.enforceRateLimit = airtableLimits
            configuration.airtable.allowPrivateDownloads = downloadsAllowPrivate
            configuration.airtable.allowLoopbackDownloads = demo || downloadsAllowPrivate
            configuration.airtable.publicURL = publicURL
            configuration.webhooks.allowPrivateTargets = webhooksAllowPrivate
            // The demo's receivers run on this machine.
            configuration.webhooks.allowLoopbackTargets = demo
            if let mirror, let upstream = URL(string: mirror) {
                configuration.mirror = MirrorConfiguration(
                    upstream: upstream,
                    bases: mirrorBases.compactMap { BaseID($0) },
                    token: environment["PYAT_MIRROR_TOKEN"] ?? "",
                    owner: mirrorOwner.map { UserID($0).map(MirrorOwner.user) ?? .email($0) } ?? .email(DemoData.email),
                    requestsPerSecond: mirrorRate
                )
            }
            return configuration
        }

        func run() async throws {
            // Whatever this process creates is for this user alone; the server also sets explicit
            // modes, this covers anything a library creates on its own.
            umask(0o077)
            if logFormat == "json" {
                LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
            } else {
                LoggingSystem.bootstrap { TextLogHandler(label: $0) }
            }
            var logger = Logger(label: "pyat.server")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let configuration = serverConfiguration
            let services = try await ServerServices.open(configuration: configuration, logger: logger)
            let demoToken = demo ? try await DemoData.seed(services: services) : nil
            let host = self.host
            let dataDirectory = self.dataDirectory
            let airtableLimits = self.airtableLimits
            let storage: String
            switch configuration.database {
            case .sqlite: storage = "SQLite (\(configuration.databasePath))"
            case .postgres(let location, let poolSize):
                storage = "PostgreSQL \(location) (pool of \(poolSize); other instances may share it)"
            }
            let application = buildApplication(services: services) { port in
                let url = "http://\(host):\(port)"
                var lines = [
                    "pyat serve: listening on \(url) (data in \(dataDirectory))",
                    "storage: \(storage)",
                    "Airtable API: \(url)/v0"
                        + (airtableLimits ? " (Airtable's rate limit: 5 requests/s per base)" : ""),
                ]
                if let demoToken {
                    lines.append("demo user: \(demoToken.email) / \(demoToken.password)")
                    lines.append("export PYAT_SERVER=\(url)")
                    lines.append("export PYAT_TOKEN=\(demoToken.token)")
                }
                FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            }
            try await application.runService()
        }
    }
}
