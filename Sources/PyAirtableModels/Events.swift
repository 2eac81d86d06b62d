import Foundation

/// What an event reports, such as `record.created`.
public struct EventType: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let userUpdated = EventType(rawValue: "user.updated")
    public static let workspaceCreated = EventType(rawValue: "workspace.created")
    public static let workspaceUpdated = EventType(rawValue: "workspace.updated")
    public static let workspaceDeleted = EventType(rawValue: "workspace.deleted")
    public static let memberAdded = EventType(rawValue: "member.added")
    public static let memberUpdated = EventType(rawValue: "member.updated")
    public static let memberRemoved = EventType(rawValue: "member.removed")
    public static let baseCreated = EventType(rawValue: "base.created")
    public static let baseUpdated = EventType(rawValue: "base.updated")
    public static let baseDeleted = EventType(rawValue: "base.deleted")
    public static let tableCreated = EventType(rawValue: "table.created")
    public static let tableUpdated = EventType(rawValue: "table.updated")
    public static let tableDeleted = EventType(rawValue: "table.deleted")
    public static let fieldCreated = EventType(rawValue: "field.created")
    public static let fieldUpdated = EventType(rawValue: "field.updated")
    public static let fieldDeleted = EventType(rawValue: "field.deleted")
    public static let viewCreated = EventType(rawValue: "view.created")
    public static let viewUpdated = EventType(rawValue: "view.updated")
    public static let viewDeleted = EventType(rawValue: "view.deleted")
    public static let recordCreated = EventType(rawValue: "record.created")
    public static let recordUpdated = EventType(rawValue: "record.updated")
    public static let recordDeleted = EventType(rawValue: "record.deleted")
    public static let commentCreated = EventType(rawValue: "comment.created")
    public static let commentUpdated = EventType(rawValue: "comment.updated")
    public static let commentDeleted = EventType(rawValue: "comment.deleted")
    public static let fileCreated = EventType(rawValue: "file.created")
    public static let fileDeleted = EventType(rawValue: "file.deleted")
    public static let webhookCreated = EventType(rawValue: "webhook.created")
    public static let webhookUpdated = EventType(rawValue: "webhook.updated")
    public static let webhookDeleted = EventType(rawValue: "webhook.deleted")

    public var description: String { rawValue }
}

/// An entry of the event log: one per mutation, with a strictly increasing `seq`.
public struct Event: Codable, Sendable, Hashable {
    public var seq: Int64
    public var type: EventType
    public var workspaceID: WorkspaceID?
    public var baseID: BaseID?
    public var tableID: TableID?
    public var recordID: RecordID?
    /// The resource after the change (for deletions, its id), as JSON.
    public var payload: JSONValue
    public var actor: UserID?
    public var ts: Date

    public init(
        seq: Int64,
        type: EventType,
        workspaceID: WorkspaceID? = nil,
        baseID: BaseID? = nil,
        tableID: TableID? = nil,
        recordID: RecordID? = nil,
        payload: JSONValue,
        actor: UserID?,
        ts: Date
    ) {
        self.seq = seq
        self.type = type
        self.workspaceID = workspaceID
        self.baseID = baseID
        self.tableID = tableID
        self.recordID = recordID
        self.payload = payload
        self.actor = actor
        self.ts = ts
    }

    enum CodingKeys: String, CodingKey {
        case seq, type
        case workspaceID = "workspace_id"
        case baseID = "base_id"
        case tableID = "table_id"
        case recordID = "record_id"
        case payload, actor, ts
    }
}

/// `GET /events/log`: a page of events and the `since` to ask for next.
public struct EventLogPage: Codable, Sendable, Hashable {
    /// The most events one page carries.
    public static let maximumLimit = 1000

    public var data: [Event]
    public var nextSince: Int64

    public init(data: [Event], nextSince: Int64) {
        self.data = data
        self.nextSince = nextSince
    }

    enum CodingKeys: String, CodingKey {
        case data
        case nextSince = "next_since"
    }
}

/// What a realtime subscription or an event-log read narrows to. Empty means everything the caller may read.
public struct EventFilter: Codable, Sendable, Hashable {
    public var workspaceID: WorkspaceID?
    public var baseID: BaseID?
    public var tableID: TableID?
    public var recordID: RecordID?

    public init(
        workspaceID: WorkspaceID? = nil,
        baseID: BaseID? = nil,
        tableID: TableID? = nil,
        recordID: RecordID? = nil
    ) {
        self.workspaceID = workspaceID
        self.baseID = baseID
        self.tableID = tableID
        self.recordID = recordID
    }

    /// Whether `event` passes this filter.
    public func matches(_ event: Event) -> Bool {
        if let workspaceID, event.workspaceID != workspaceID { return false }
        if let baseID, event.baseID != baseID { return false }
        if let tableID, event.tableID != tableID { return false }
        if let recordID, event.recordID != recordID { return false }
        return true
    }

    enum CodingKeys: String, CodingKey {
        case workspaceID = "workspace_id"
        case baseID = "base_id"
        case tableID = "table_id"
        case recordID = "record_id"
    }
}
