import Crypto
import Foundation
import Logging
import PyAirtableModels

/// How a reference server runs. Every property has a default, so `ServerConfiguration()` serves
/// on 127.0.0.1:8080 with its data in `./pyat-data`.
public struct ServerConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The port to listen on; 0 picks a free one.
    public var port: Int
    /// Where the database, the uploaded files and the server's secrets live. Created 0700 (an
    /// existing one is tightened to it), with every file in it 0600.
    public var dataDirectory: String
    /// The largest request body accepted (413 past it).
    public var maximumBodySize: Int
    /// The largest file `POST /api/v1/files` accepts (413 past it). Uploads stream to disk, so this
    /// bounds disk use, not memory.
    public var maximumFileSize: Int64
    /// The most bytes of files one user may have uploaded, counting the files that still exist
    /// (deleting one frees its size); an upload past it is refused with 413. 10 GiB by default;
    /// 0 means no quota.
    public var uploadQuotaBytes: Int64
    /// The most fields a table may have, however they are added (with the table, or one by one).
    public var maximumFieldsPerTable: Int
    /// Users who may read server-wide counts (`GET /api/v1/stats?scope=server`); everyone else
    /// sees counts of their own workspaces. They sign in as any user does. None by default.
    public var operatorUserIDs: Set<UserID>
    /// The JWT signing secret, at least 32 bytes (a shorter one is refused at start); when `nil`, one
    /// is generated on first start and kept 0600 in the data directory.
    public var jwtSecret: String?
    /// Token lifetimes, password hashing, and the throttles of the auth routes.
    public var auth: Authenticator.Configuration
    /// The addresses of reverse proxies whose `X-Forwarded-For` names the client, for the per-address
    /// limits of the auth routes. Empty by default: the connection's own address is the client, and
    /// `X-Forwarded-For` is ignored (anyone can send it).
    public var trustedProxies: [String]
    /// How long the event log keeps events (older `since` values get 410 `RESYNC_REQUIRED`).
    public var eventRetention: TimeInterval
    /// How long idempotent answers are kept.
    public var idempotencyRetention: TimeInterval
    /// Whether each commit is fsynced before it is acknowledged.
    public var durableCommits: Bool
    /// The memory for recently read records, answered without the database (0: no cache). Writes
    /// keep it current; see ``RecordReadCache``.
    public var recordCacheBytes: Int
    /// The wall clock, injected so tests can move time.
    public var now: @Sendable () -> Date
    /// The clock the server's waits run on (maintenance passes, SSE heartbeats and credential
    /// lifetimes, the hub's retries, the webhook worker's waits); injected so tests drive them
    /// without waiting. WebSocket pings, idle closes and credential expiry run on the connection's
    /// event loop timers instead (no task per connection), so they do not follow this clock.
    /// Deadlines themselves are read from ``now``: a test that moves one moves the other.
    public var clock: any Clock<Duration>
    /// The server's name in logs and the `Server` header.
    public var serverName: String
    /// Realtime buffers, heartbeats, pings and timeouts.
    public var realtime: RealtimeConfiguration
    /// Webhook targets, delivery timeouts, retries and limits.
    public var webhooks: WebhookConfiguration
    /// Size, nesting and work limits on what one request may ask (formulas, JSON bodies, cursors,
    /// filter scans).
    public var limits: RequestLimits
    /// How the Airtable API under `/v0` behaves (its rate limit).
    public var airtable: AirtableConfiguration
    /// Where the store lives: the data directory's SQLite file (the default), or a PostgreSQL
    /// database that several instances share (`--database postgres://…`).
    public var database: DatabaseChoice = .sqlite
    /// How long a PostgreSQL statement may go unanswered (a read's, a batch of writes') before its
    /// requests answer 503 with `Retry-After` and the connection is closed (`--database-timeout`,
    /// 30 s: long enough for a commit queued behind other instances' on a loaded machine). Waiting for a connection has its own 5 s.
    public var databaseOperationTimeout: Duration = .seconds(30)
    /// The storage secret (sealed answers and webhook secrets, request hashes), at least 32 bytes;
    /// when `nil`, the data directory's `storage-secret` file (made on first start). Instances sharing
    /// a PostgreSQL database must share it (`PYAT_STORAGE_SECRET`), as they must share the JWT secret.
    public var storageSecret: String?
    /// Where uploaded files' bytes live, when not in the data directory: instances sharing a
    /// database must share it too (a directory every instance mounts), so a file uploaded through
    /// one is served by all and stored once.
    public var filesDirectory: String?
    /// Mirror mode (`pyat serve --mirror URL --mirror-base app…`): bases of an upstream Airtable API
    /// kept here, read-only. `nil` (the default): no mirror.
    public var mirror: MirrorConfiguration?

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        dataDirectory: String = "./pyat-data",
        maximumBodySize: Int = 4 * 1024 * 1024,
        maximumFileSize: Int64 = 1 << 30,
        uploadQuotaBytes: Int64 = 10 << 30,
        maximumFieldsPerTable: Int = 500,
        operatorUserIDs: Set<UserID> = [],
        jwtSecret: String? = nil,
        auth: Authenticator.Configuration = .init(),
        trustedProxies: [String] = [],
        eventRetention: TimeInterval = 7 * 24 * 3600,
        idempotencyRetention: TimeInterval = 24 * 3600,
        durableCommits: Bool = true,
        recordCacheBytes: Int = 32 << 20,
        now: @escaping @Sendable () -> Date = { Date() },
        clock: any Clock<Duration> = ContinuousClock(),
        serverName: String = "pyat",
        realtime: RealtimeConfiguration = .init(),
        webhooks: WebhookConfiguration = .init(),
        limits: RequestLimits = .init(),
        airtable: AirtableConfiguration = .init()
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.maximumBodySize = maximumBodySize
        self.maximumFileSize = maximumFileSize
        self.uploadQuotaBytes = uploadQuotaBytes
        self.maximumFieldsPerTable = maximumFieldsPerTable
        self.operatorUserIDs = operatorUserIDs
        self.jwtSecret = jwtSecret
        self.auth = auth
        self.trustedProxies = trustedProxies
        self.eventRetention = eventRetention
        self.idempotencyRetention = idempotencyRetention
        self.durableCommits = durableCommits
        self.recordCacheBytes = recordCacheBytes
        self.now = now
        self.clock = clock
        self.serverName = serverName
        self.realtime = realtime
        self.webhooks = webhooks
        self.limits = limits
        self.airtable = airtable
    }

    /// The path of the SQLite database inside the data directory.
    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("pyat.sqlite") }

    /// Where uploaded files' bytes live, one file per sha256.
    public var blobDirectory: String {
        filesDirectory ?? (dataDirectory as NSString).appendingPathComponent("blobs")
    }

    /// Checks what cannot be used before anything is opened.
    /// - Throws: ``ServerConfigurationError`` naming the setting and what it needs.
    public func validate() throws {
        if let jwtSecret, jwtSecret.utf8.count < SecretFile.minimumLength {
            throw ServerConfigurationError(
                message: """
                    the JWT signing secret (PYAT_JWT_SECRET) has \(jwtSecret.utf8.count) bytes; it needs at least \
                    \(SecretFile.minimumLength) random ones (for example the output of `openssl rand -hex 32`), \
                    or leave it unset to have one generated in the data directory
                    """
            )
        }
        if let storageSecret, storageSecret.utf8.count < SecretFile.minimumLength {
            throw ServerConfigurationError(
                message: """
                    the storage secret (PYAT_STORAGE_SECRET) has \(storageSecret.utf8.count) bytes; it needs at least \
                    \(SecretFile.minimumLength) random ones (for example the output of `openssl rand -hex 32`)
                    """
            )
        }
        if case .postgres(_, let poolSize) = database, !(2...1000).contains(poolSize) {
            throw ServerConfigurationError(message: "the database pool size must be from 2 to 1000, not \(poolSize)")
        }
        guard databaseOperationTimeout >= .seconds(1), databaseOperationTimeout <= .seconds(3600) else {
            throw ServerConfigurationError(
                message: "the database timeout must be from 1 to 3600 seconds, not \(databaseOperationTimeout)"
            )
        }
        guard (4...31).contains(auth.bcryptCost) else {
            throw ServerConfigurationError(message: "the bcrypt cost must be from 4 to 31, not \(auth.bcryptCost)")
        }
        _ = try TrustedProxies(trustedProxies)
        try mirror?.validate()
    }
}

/// Which database holds the store.
public enum DatabaseChoice: Sendable {
    /// `pyat.sqlite` in the data directory: zero set-up, one instance.
    case sqlite
    /// A PostgreSQL database several instances share, through a pool of `poolSize` connections per
    /// instance.
    case postgres(PostgresLocation, poolSize: Int = 16)
}

/// A configuration value the server cannot start with.
public struct ServerConfigurationError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Everything the routes share: the store, authentication, metrics and configuration.
public struct ServerServices: Sendable {
    public let configuration: ServerConfiguration
    public let store: any DataStore
    public let auth: Authenticator
    public let metrics: ServerMetrics
    /// Fans the event log out to WebSocket and SSE subscribers.
    public let realtime: RealtimeHub
    /// The content-addressed bytes of uploaded files.
    public let blobs: BlobStore
    /// The keys of sealed values and idempotency request hashes.
    public let keys: StorageKeys
    public let logger: Logger
    /// Mirror mode's syncs and status (`nil` without `--mirror`).
    public let mirror: MirrorService?
    /// Whose `X-Forwarded-For` names the client.
    let proxies: TrustedProxies
    let startedAt: ContinuousClock.Instant
    let closeStorage: @Sendable () async -> Void

    /// Opens the data directory (creating it 0700, or tightening it), the database and the secrets.
    public static func open(configuration: ServerConfiguration, logger: Logger) async throws -> ServerServices {
        try configuration.validate()
        let directory = configuration.dataDirectory
        if try PrivateFiles.createDirectory(atPath: directory) {
            // Made by a version that left it open to every local user: its files are too.
            let tightened = try PrivateFiles.tightenTree(atPath: directory)
            logger.warning(
                "the data directory was readable by other users; restricted it to 0700 and its files to 0600",
                metadata: ["path": "\(directory)", "entries_tightened": "\(tightened)"]
            )
        }
        let keys = StorageKeys(
            secret: try configuration.storageSecret.map { Array($0.utf8) }
                ?? SecretFile.storage.loadOrCreate(
                    directory: directory,
                    durable: configuration.durableCommits,
                    logger: logger
                )
        )
        let store: any DataStore
        let realtimeSource: any RealtimeEventSource
        let closeStorage: @Sendable () async -> Void
        switch configuration.database {
        case .sqlite:
            let database = try ServerDatabase(
                path: configuration.databasePath,
                durable: configuration.durableCommits,
                recordCacheBytes: configuration.recordCacheBytes,
                keys: keys,
                logger: logger
            )
            let sqlite = SQLiteStore(
                database: database,
                logger: logger,
                idempotencyRetention: configuration.idempotencyRetention,
                limits: configuration.limits,
                maximumFieldsPerTable: configuration.maximumFieldsPerTable,
                uploadQuotaBytes: configuration.uploadQuotaBytes
            )
            store = sqlite
            realtimeSource = sqlite
            closeStorage = {}
        case .postgres(let location, let poolSize):
            let database = try await PostgresServerDatabase(
                location: location,
                maximumConnections: poolSize,
                operationTimeout: configuration.databaseOperationTimeout,
                keys: keys,
                logger: logger
            )
            let postgres = PostgresStore(
                database: database,
                logger: logger,
                idempotencyRetention: configuration.idempotencyRetention,
                limits: configuration.limits,
                maximumFieldsPerTable: configuration.maximumFieldsPerTable,
                uploadQuotaBytes: configuration.uploadQuotaBytes
            )
            store = postgres
            realtimeSource = postgres
            closeStorage = { await database.close() }
        }
        let secret =
            try configuration.jwtSecret.map { Array($0.utf8) }
            ?? SecretFile.signing.loadOrCreate(
                directory: directory,
                durable: configuration.durableCommits,
                logger: logger
            )
        let auth = await Authenticator(
            configuration: configuration.auth,
            secret: secret,
            store: store,
            now: configuration.now
        )
        let blobs: BlobStore
        if case .postgres = configuration.database {
            // Other instances may share the files directory: partial uploads apart, placements and
            // sweeps exclusive across instances.
            blobs = try BlobStore(
                directory: configuration.blobDirectory,
                durable: configuration.durableCommits,
                instance: Self.instanceName(dataDirectory: directory),
                coordination: store,
                logger: logger
            )
        } else {
            blobs = try BlobStore(
                directory: configuration.blobDirectory,
                durable: configuration.durableCommits,
                logger: logger
            )
        }
        try await blobs.recover(store: store)
        let metrics = ServerMetrics()
        let realtime = try await RealtimeHub.start(
            source: realtimeSource,
            configuration: configuration.realtime,
            metrics: metrics,
            logger: logger,
            clock: configuration.clock
        )
        var mirror: MirrorService?
        if let mirrorConfiguration = configuration.mirror {
            guard let mirrorStore = store as? any MirrorStore else {
                throw ServerConfigurationError(message: "this store cannot hold a mirror")
            }
            mirror = try await MirrorService(
                configuration: mirrorConfiguration,
                store: mirrorStore,
                dataDirectory: directory,
                clock: configuration.clock,
                now: configuration.now,
                logger: logger,
                userByEmail: { [store] email in try await store.userByEmail(email)?.id }
            )
        }
        return ServerServices(
            configuration: configuration,
            store: store,
            auth: auth,
            metrics: metrics,
            realtime: realtime,
            blobs: blobs,
            keys: keys,
            logger: logger,
            mirror: mirror,
            proxies: try TrustedProxies(configuration.trustedProxies),
            startedAt: .now,
            closeStorage: closeStorage
        )
    }

    /// A name of this instance that stays the same across its restarts: its host and data directory.
    static func instanceName(dataDirectory: String) -> String {
        let host = ProcessInfo.processInfo.hostName
        let path = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        return Hex.encode(Array(SHA256.hash(data: Data("\(host)\u{0}\(path)".utf8)).prefix(8)))
    }

    /// Closes the database's connections (a PostgreSQL pool and its listener; nothing for SQLite,
    /// which closes with the last reference). The application does it on shutdown.
    public func close() async {
        await closeStorage()
    }

    var uptimeSeconds: Double {
        let elapsed = ContinuousClock.now - startedAt
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
