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
    /// Where the database and the signing secret live.
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
    /// The JWT signing secret; when `nil`, one is generated on first start and kept 0600 in the data directory.
    public var jwtSecret: String?
    /// Token lifetimes and the password hashing cost.
    public var auth: Authenticator.Configuration
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
    /// The server's name in logs and the `Server` header.
    public var serverName: String
    /// Realtime buffers, heartbeats, pings and timeouts.
    public var realtime: RealtimeConfiguration
    /// Webhook targets, delivery timeouts, retries and limits.
    public var webhooks: WebhookConfiguration

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
        eventRetention: TimeInterval = 7 * 24 * 3600,
        idempotencyRetention: TimeInterval = 24 * 3600,
        durableCommits: Bool = true,
        recordCacheBytes: Int = 32 << 20,
        now: @escaping @Sendable () -> Date = { Date() },
        serverName: String = "pyat",
        realtime: RealtimeConfiguration = .init(),
        webhooks: WebhookConfiguration = .init()
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
        self.eventRetention = eventRetention
        self.idempotencyRetention = idempotencyRetention
        self.durableCommits = durableCommits
        self.recordCacheBytes = recordCacheBytes
        self.now = now
        self.serverName = serverName
        self.realtime = realtime
        self.webhooks = webhooks
    }

    /// The path of the SQLite database inside the data directory.
    public var databasePath: String { (dataDirectory as NSString).appendingPathComponent("pyat.sqlite") }

    /// Where uploaded files' bytes live, one file per sha256.
    public var blobDirectory: String { (dataDirectory as NSString).appendingPathComponent("blobs") }
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
    public let logger: Logger
    let startedAt: ContinuousClock.Instant

    /// Opens the data directory (creating it), the database and the signing secret.
    public static func open(configuration: ServerConfiguration, logger: Logger) async throws -> ServerServices {
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        let database = try ServerDatabase(
            path: configuration.databasePath,
            durable: configuration.durableCommits,
            recordCacheBytes: configuration.recordCacheBytes,
            logger: logger
        )
        let store = SQLiteStore(
            database: database,
            logger: logger,
            idempotencyRetention: configuration.idempotencyRetention,
            maximumFieldsPerTable: configuration.maximumFieldsPerTable,
            uploadQuotaBytes: configuration.uploadQuotaBytes
        )
        let secret =
            try configuration.jwtSecret.map { Array($0.utf8) }
            ?? SigningSecret.loadOrCreate(directory: configuration.dataDirectory, logger: logger)
        let auth = await Authenticator(
            configuration: configuration.auth,
            secret: secret,
            store: store,
            now: configuration.now
        )
        let blobs = try BlobStore(
            directory: configuration.blobDirectory,
            durable: configuration.durableCommits,
            logger: logger
        )
        try await blobs.recover(store: store)
        let metrics = ServerMetrics()
        let realtime = try await RealtimeHub.start(
            source: store,
            configuration: configuration.realtime,
            metrics: metrics,
            logger: logger
        )
        return ServerServices(
            configuration: configuration,
            store: store,
            auth: auth,
            metrics: metrics,
            realtime: realtime,
            blobs: blobs,
            logger: logger,
            startedAt: .now
        )
    }

    var uptimeSeconds: Double {
        let elapsed = ContinuousClock.now - startedAt
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// The JWT signing secret kept in the data directory with mode 0600.
enum SigningSecret {
    static let fileName = "jwt-secret"

    static func loadOrCreate(directory: String, logger: Logger) throws -> [UInt8] {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let fileManager = FileManager.default
        if let data = fileManager.contents(atPath: path), data.count >= 32 {
            let attributes = try fileManager.attributesOfItem(atPath: path)
            if let permissions = attributes[.posixPermissions] as? Int, permissions & 0o077 != 0 {
                logger.warning(
                    "the signing secret is readable by others; restricting it to 0600",
                    metadata: ["path": "\(path)"]
                )
                try fileManager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            }
            return Array(data)
        }
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) }
        guard fileManager.createFile(atPath: path, contents: Data(secret), attributes: [.posixPermissions: 0o600])
        else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        logger.info("generated a new signing secret", metadata: ["path": "\(path)"])
        return secret
    }
}
