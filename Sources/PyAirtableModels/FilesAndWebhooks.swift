import Foundation

/// An uploaded file's metadata. The bytes are stored once per distinct sha256.
///
/// A file with a `workspaceID` belongs to that workspace: every member may read it, editors and
/// above may upload, its uploader or a creator and above may delete it. A file without one is
/// private to its uploader.
public struct FileMetadata: Codable, Sendable, Hashable, Identifiable {
    public var id: FileID
    /// The name the uploader gave; metadata only, never a path on the server.
    public var name: String
    public var contentType: String
    public var size: Int64
    /// The lowercase hex SHA-256 of the bytes, also the download's `ETag`.
    public var sha256: String
    public var workspaceID: WorkspaceID?
    /// Who uploaded the file.
    public var createdBy: UserID?
    public var createdAt: Date

    public init(
        id: FileID,
        name: String,
        contentType: String,
        size: Int64,
        sha256: String,
        workspaceID: WorkspaceID? = nil,
        createdBy: UserID? = nil,
        createdAt: Date
    ) {
        self.id = id
        self.name = name
        self.contentType = contentType
        self.size = size
        self.sha256 = sha256
        self.workspaceID = workspaceID
        self.createdBy = createdBy
        self.createdAt = createdAt
    }

    /// The path of the file's bytes on its server: `/api/v1/files/{id}/content`.
    public var contentPath: String { "/api/v1/files/\(id.rawValue)/content" }

    enum CodingKeys: String, CodingKey {
        case id, name
        case contentType = "content_type"
        case size, sha256
        case workspaceID = "workspace_id"
        case createdBy = "created_by"
        case createdAt = "created_at"
    }
}

/// A webhook: the server POSTs matching events of a base to `url`, signed with the secret.
public struct Webhook: Codable, Sendable, Hashable, Identifiable {
    public var id: WebhookID
    public var baseID: BaseID
    public var url: String
    public var events: [EventType]
    public var tableID: TableID?
    public var enabled: Bool
    public var disabledReason: String?
    /// Delivery attempts that failed in a row (0 after a success); the webhook is disabled past a limit.
    public var failureCount: Int
    /// The signing secret; present only in the answer that created the webhook.
    public var secret: String?
    public var createdAt: Date

    public init(
        id: WebhookID,
        baseID: BaseID,
        url: String,
        events: [EventType],
        tableID: TableID? = nil,
        enabled: Bool = true,
        disabledReason: String? = nil,
        failureCount: Int = 0,
        secret: String? = nil,
        createdAt: Date
    ) {
        self.id = id
        self.baseID = baseID
        self.url = url
        self.events = events
        self.tableID = tableID
        self.enabled = enabled
        self.disabledReason = disabledReason
        self.failureCount = failureCount
        self.secret = secret
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case baseID = "base_id"
        case url, events
        case tableID = "table_id"
        case enabled
        case disabledReason = "disabled_reason"
        case failureCount = "failure_count"
        case secret
        case createdAt = "created_at"
    }
}

/// `POST /bases/{id}/webhooks`. An empty `events` means every event of the base.
public struct CreateWebhookRequest: Codable, Sendable, Hashable {
    public var url: String
    public var events: [EventType]?
    public var tableID: TableID?

    public init(url: String, events: [EventType]? = nil, tableID: TableID? = nil) {
        self.url = url
        self.events = events
        self.tableID = tableID
    }

    enum CodingKeys: String, CodingKey {
        case url, events
        case tableID = "table_id"
    }
}

/// One attempt to deliver an event to a webhook.
public struct WebhookDelivery: Codable, Sendable, Hashable, Identifiable {
    public enum Status: String, Codable, Sendable, Hashable {
        case pending, succeeded, failed
    }

    public var id: DeliveryID
    public var webhookID: WebhookID
    public var eventSeq: Int64
    /// The delivered event's type (`X-PyAirtable-Event`).
    public var eventType: EventType?
    public var status: Status
    public var attempts: Int
    /// The HTTP status of the last attempt, when the receiver answered.
    public var responseStatus: Int?
    /// Why the last attempt failed.
    public var error: String?
    public var createdAt: Date
    /// When the last attempt was made.
    public var lastAttemptAt: Date?
    /// When a pending delivery is attempted next.
    public var nextAttemptAt: Date?
    public var deliveredAt: Date?

    public init(
        id: DeliveryID,
        webhookID: WebhookID,
        eventSeq: Int64,
        eventType: EventType? = nil,
        status: Status,
        attempts: Int,
        responseStatus: Int? = nil,
        error: String? = nil,
        createdAt: Date,
        lastAttemptAt: Date? = nil,
        nextAttemptAt: Date? = nil,
        deliveredAt: Date? = nil
    ) {
        self.id = id
        self.webhookID = webhookID
        self.eventSeq = eventSeq
        self.eventType = eventType
        self.status = status
        self.attempts = attempts
        self.responseStatus = responseStatus
        self.error = error
        self.createdAt = createdAt
        self.lastAttemptAt = lastAttemptAt
        self.nextAttemptAt = nextAttemptAt
        self.deliveredAt = deliveredAt
    }

    enum CodingKeys: String, CodingKey {
        case id
        case webhookID = "webhook_id"
        case eventSeq = "event_seq"
        case eventType = "event_type"
        case status, attempts
        case responseStatus = "response_status"
        case error
        case createdAt = "created_at"
        case lastAttemptAt = "last_attempt_at"
        case nextAttemptAt = "next_attempt_at"
        case deliveredAt = "delivered_at"
    }
}
