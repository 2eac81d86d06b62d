import Foundation
import PyAirtableModels

/// An event of the log as realtime fan-out carries it: the columns routing and access checks need,
/// and the event's wire JSON, encoded once for every subscriber.
public struct RealtimeEvent: Sendable, Hashable {
    public var seq: Int64
    public var type: String
    public var workspaceID: String?
    public var baseID: String?
    public var tableID: String?
    public var recordID: String?
    public var actor: String?
    /// Users who may read the event although it took their access away (see `event_recipients`).
    public var recipients: [String]
    /// The event as the wire's `Event` JSON, on one line.
    public var json: String

    /// Whether the event passes a subscription's filter.
    func matches(_ filter: EventFilter) -> Bool {
        if let workspace = filter.workspaceID, workspace.rawValue != workspaceID { return false }
        if let base = filter.baseID, base.rawValue != baseID { return false }
        if let table = filter.tableID, table.rawValue != tableID { return false }
        if let record = filter.recordID, record.rawValue != recordID { return false }
        return true
    }

    /// Whether membership sets must be re-read once this event committed.
    var changesMembership: Bool {
        switch EventType(rawValue: type) {
        case .memberAdded, .memberUpdated, .memberRemoved, .workspaceCreated, .workspaceDeleted: true
        default: false
        }
    }
}

/// A page of catch-up for one subscription.
public enum RealtimeCatchUp: Sendable, Hashable {
    /// Events after the asked-for seq were trimmed from the log (or the seq is past its head).
    case resyncRequired(head: Int64)
    /// The events the user may read, and the seq the page covers through (at least the last event's).
    case events([RealtimeEvent], through: Int64)
}

/// What the realtime hub needs from the store: commit notifications and reads of the event log.
public protocol RealtimeEventSource: Sendable {
    /// Calls `observer` after every committed write transaction.
    func observeCommits(_ observer: @escaping @Sendable () -> Void)
    /// The newest seq the log has handed out (0 when none).
    func realtimeHead() async throws -> Int64
    /// Every event after `seq`, oldest first, with its recipients.
    func realtimeEvents(after seq: Int64, limit: Int) async throws -> [RealtimeEvent]
    /// The events after `seq` that `user` may read and `filter` passes, oldest first.
    func realtimeCatchUp(
        after seq: Int64,
        filter: EventFilter,
        user: UserID,
        limit: Int
    ) async throws
        -> RealtimeCatchUp
    /// The workspaces each user is a member of.
    func workspaceMemberships(of users: [UserID]) async throws -> [UserID: Set<String>]
}
