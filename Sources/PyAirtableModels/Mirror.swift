import Foundation

/// What a server in mirror mode (`pyat serve --mirror URL --mirror-base app…`) says about the
/// bases it mirrors: `GET /api/v1/mirror`. Each caller sees the bases whose workspace they belong to.
public struct MirrorStatus: Codable, Sendable, Hashable {
    /// The upstream's address (any Airtable Web API v0: Airtable itself, or another `pyat serve`).
    public var upstream: String
    public var bases: [MirrorBaseStatus]

    public init(upstream: String, bases: [MirrorBaseStatus]) {
        self.upstream = upstream
        self.bases = bases
    }
}

/// One mirrored base: the snapshot it serves, and how the latest sync went.
public struct MirrorBaseStatus: Codable, Sendable, Hashable {
    /// The base's id, the same here as upstream.
    public var baseID: BaseID
    /// The local workspace holding the mirrored base (`nil` before its first complete sync).
    public var workspaceID: WorkspaceID?
    /// `syncing` while a sync runs, `failed` when the latest one failed (the previous snapshot still
    /// serves), `ok` otherwise, `pending` before the first sync.
    public var state: String
    /// The snapshot being served: every answer about the base reflects it (`nil` before the first
    /// complete sync: the base is not served yet).
    public var snapshot: MirrorSnapshotSummary?
    /// The sync under way or last finished.
    public var lastSync: MirrorSyncReport?
    /// Upstream fields this mirror does not serve yet, so their cells are left out.
    public var skippedFields: [MirrorSkippedField]

    public init(
        baseID: BaseID,
        workspaceID: WorkspaceID? = nil,
        state: String,
        snapshot: MirrorSnapshotSummary? = nil,
        lastSync: MirrorSyncReport? = nil,
        skippedFields: [MirrorSkippedField] = []
    ) {
        self.baseID = baseID
        self.workspaceID = workspaceID
        self.state = state
        self.snapshot = snapshot
        self.lastSync = lastSync
        self.skippedFields = skippedFields
    }

    enum CodingKeys: String, CodingKey {
        case baseID = "base_id"
        case workspaceID = "workspace_id"
        case state, snapshot
        case lastSync = "last_sync"
        case skippedFields = "skipped_fields"
    }
}

/// A complete, verified snapshot of a base: what the mirror serves until the next one replaces it.
public struct MirrorSnapshotSummary: Codable, Sendable, Hashable {
    /// Names the sync that built it; answers about the base carry it in `Pyat-Mirror-Sync`.
    public var syncID: String
    public var completedAt: Date
    public var tables: Int
    public var records: Int
    /// A digest of every record's id and cells, as verified against what the upstream sent.
    public var digest: String

    public init(syncID: String, completedAt: Date, tables: Int, records: Int, digest: String) {
        self.syncID = syncID
        self.completedAt = completedAt
        self.tables = tables
        self.records = records
        self.digest = digest
    }

    enum CodingKeys: String, CodingKey {
        case syncID = "sync_id"
        case completedAt = "completed_at"
        case tables, records, digest
    }
}

/// One sync of a base from its upstream.
public struct MirrorSyncReport: Codable, Sendable, Hashable {
    public var syncID: String
    /// `full` (schema and every record, applied at once when complete).
    public var kind: String
    public var startedAt: Date
    public var finishedAt: Date?
    /// `running`, `ok` or `failed`.
    public var outcome: String
    /// Why it failed, when it did.
    public var error: String?
    /// Whether it went on from pages an interrupted run of the same sync had already fetched.
    public var resumed: Bool
    public var recordsFetched: Int
    public var requests: Int
    /// Answers 429 (the upstream's rate limit): each was waited out as its `Retry-After` said.
    public var rateLimited: Int
    /// Records created, updated and deleted by applying it.
    public var created: Int
    public var updated: Int
    public var deleted: Int

    public init(
        syncID: String,
        kind: String,
        startedAt: Date,
        finishedAt: Date? = nil,
        outcome: String,
        error: String? = nil,
        resumed: Bool = false,
        recordsFetched: Int = 0,
        requests: Int = 0,
        rateLimited: Int = 0,
        created: Int = 0,
        updated: Int = 0,
        deleted: Int = 0
    ) {
        self.syncID = syncID
        self.kind = kind
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.error = error
        self.resumed = resumed
        self.recordsFetched = recordsFetched
        self.requests = requests
        self.rateLimited = rateLimited
        self.created = created
        self.updated = updated
        self.deleted = deleted
    }

    enum CodingKeys: String, CodingKey {
        case syncID = "sync_id"
        case kind
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case outcome, error, resumed
        case recordsFetched = "records_fetched"
        case requests
        case rateLimited = "rate_limited"
        case created, updated, deleted
    }
}

/// An upstream field the mirror leaves out (a type it does not store yet).
public struct MirrorSkippedField: Codable, Sendable, Hashable {
    public var tableID: TableID
    public var fieldID: FieldID
    public var name: String
    public var type: String

    public init(tableID: TableID, fieldID: FieldID, name: String, type: String) {
        self.tableID = tableID
        self.fieldID = fieldID
        self.name = name
        self.type = type
    }

    enum CodingKeys: String, CodingKey {
        case tableID = "table_id"
        case fieldID = "field_id"
        case name, type
    }
}

/// `POST /api/v1/mirror/refresh`: sync now (every base the caller may refresh, or the one named).
public struct MirrorRefreshRequest: Codable, Sendable, Hashable {
    public var baseID: BaseID?

    public init(baseID: BaseID? = nil) {
        self.baseID = baseID
    }

    enum CodingKeys: String, CodingKey {
        case baseID = "base_id"
    }
}
