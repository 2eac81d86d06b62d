import Foundation

/// `GET /health`.
public struct HealthStatus: Codable, Sendable, Hashable {
    public var status: String
    public var version: String
    public var uptimeSeconds: Double
    public var database: String
    /// In mirror mode: how the mirrored bases' syncs stand (`nil` otherwise).
    public var mirror: MirrorHealth?

    public init(status: String, version: String, uptimeSeconds: Double, database: String, mirror: MirrorHealth? = nil) {
        self.status = status
        self.version = version
        self.uptimeSeconds = uptimeSeconds
        self.database = database
        self.mirror = mirror
    }

    enum CodingKeys: String, CodingKey {
        case status, version
        case uptimeSeconds = "uptime_seconds"
        case database, mirror
    }
}

/// `GET /health`'s view of mirror mode: counts, and why the newest failed sync failed.
public struct MirrorHealth: Codable, Sendable, Hashable {
    public var bases: Int
    /// Bases serving a complete snapshot.
    public var served: Int
    /// Bases whose latest sync failed (a previous snapshot, if any, still serves).
    public var failing: Int
    public var syncing: Int
    public var lastError: String?

    public init(bases: Int, served: Int, failing: Int, syncing: Int, lastError: String? = nil) {
        self.bases = bases
        self.served = served
        self.failing = failing
        self.syncing = syncing
        self.lastError = lastError
    }

    enum CodingKeys: String, CodingKey {
        case bases, served, failing, syncing
        case lastError = "last_error"
    }
}

/// `GET /api/v1/stats`: counts of what the caller can see — the workspaces they are a member of
/// and what those hold — or, with `?scope=server` and only for the server's operators, of the whole
/// server.
public struct ServerStats: Codable, Sendable, Hashable {
    /// What the counts cover.
    public enum Scope: String, Codable, Sendable, Hashable, CaseIterable {
        /// The workspaces the caller is a member of (the default).
        case workspaces
        /// The whole server (operators only).
        case server
    }

    public var scope: Scope
    /// Users who share a workspace with the caller, the caller included; every user in `server` scope.
    public var users: Int
    public var workspaces: Int
    public var bases: Int
    public var tables: Int
    public var records: Int
    /// Events of the retained log the caller may read; all of them in `server` scope.
    public var events: Int
    /// The newest seq of the event log, to subscribe or poll from. It is the log's position (which
    /// every `next_since` and event `seq` also shows), not a count of anything the caller sees.
    public var lastEventSeq: Int64
    /// Requests the server answered since it started; only in `server` scope.
    public var requests: Int?
    public var uptimeSeconds: Double

    public init(
        scope: Scope = .workspaces,
        users: Int,
        workspaces: Int,
        bases: Int,
        tables: Int,
        records: Int,
        events: Int,
        lastEventSeq: Int64,
        requests: Int? = nil,
        uptimeSeconds: Double
    ) {
        self.scope = scope
        self.users = users
        self.workspaces = workspaces
        self.bases = bases
        self.tables = tables
        self.records = records
        self.events = events
        self.lastEventSeq = lastEventSeq
        self.requests = requests
        self.uptimeSeconds = uptimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case scope, users, workspaces, bases, tables, records, events
        case lastEventSeq = "last_event_seq"
        case requests
        case uptimeSeconds = "uptime_seconds"
    }
}

/// The HTTP headers of the contract.
public enum HeaderName {
    public static let idempotencyKey = "Idempotency-Key"
    public static let idempotentReplayed = "Idempotent-Replayed"
    public static let requestID = "X-Request-ID"
    public static let ifMatch = "If-Match"
    public static let ifNoneMatch = "If-None-Match"
    public static let eTag = "ETag"
    public static let retryAfter = "Retry-After"
    public static let lastEventID = "Last-Event-ID"
    public static let webhookSignature = "X-PyAirtable-Signature"
    public static let webhookDelivery = "X-PyAirtable-Delivery"
}

/// The `ETag` of a versioned resource: the version in quotes.
public enum VersionTag {
    /// `"3"` for version 3.
    public static func format(_ version: Int) -> String { "\"\(version)\"" }

    /// The version of an `ETag`/`If-Match` value: `"3"`, `W/"3"` or a bare `3`.
    public static func parse(_ value: String) -> Int? {
        var text = value.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("W/") { text.removeFirst(2) }
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
            text = String(text.dropFirst().dropLast())
        }
        return Int(text)
    }
}
