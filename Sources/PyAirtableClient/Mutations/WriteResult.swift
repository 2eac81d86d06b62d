import Foundation
import OfflineQueue
import PyAirtableModels

/// The id a record created while offline has until its create reaches the server: `tmp_` and 14
/// letters or digits. It is never a `RecordID`, which always names a record the
/// server has.
public typealias TemporaryRecordID = TemporaryID

/// A record named by the server's id, or by the temporary id of a create still in the offline queue.
public enum RecordReference: Hashable, Sendable, CustomStringConvertible {
    /// A record the server has.
    case server(RecordID)
    /// A record whose create waits in the offline queue.
    case temporary(TemporaryRecordID)

    /// Reads a record id (`rec…`) or a temporary id (`tmp_…`); `nil` for anything else.
    public init?(_ string: String) {
        if let id = RecordID(string) {
            self = .server(id)
        } else if let temporary = TemporaryRecordID(string) {
            self = .temporary(temporary)
        } else {
            return nil
        }
    }

    /// The id as the wire carries it.
    public var rawValue: String {
        switch self {
        case .server(let id): id.rawValue
        case .temporary(let id): id.rawValue
        }
    }

    /// The server's id, when the record has one.
    public var serverID: RecordID? {
        if case .server(let id) = self { return id }
        return nil
    }

    public var description: String { rawValue }

    /// The SDK's internal form: a temporary id travels through the write pipeline as a record id.
    init(internal id: RecordID) {
        self = TemporaryRecordID(id.rawValue).map(RecordReference.temporary) ?? .server(id)
    }

    /// The SDK's internal form (see ``init(internal:)``).
    var internalID: RecordID {
        switch self {
        case .server(let id): id
        case .temporary(let id): RecordID(unchecked: id.rawValue)
        }
    }
}

/// A record as this client's pending writes make it, before the server has confirmed them: a record
/// created offline (under its temporary id), or a server record with pending changes applied.
public struct PendingRecord: Sendable, Hashable, Identifiable {
    /// The record: the server's id, or the temporary id of a pending create.
    public var id: RecordReference
    /// The record's table, when known.
    public var tableID: TableID?
    /// The fields as reads show them with the pending writes applied. For an update of a record
    /// this client holds no copy of, only the fields the write changes.
    public var fields: [String: FieldValue]
    /// The server version the pending writes start from; `nil` for a create, or when no copy is held.
    public var baseVersion: Int?
    /// When the first pending write was made.
    public var createdAt: Date

    public init(
        id: RecordReference,
        tableID: TableID?,
        fields: [String: FieldValue],
        baseVersion: Int? = nil,
        createdAt: Date
    ) {
        self.id = id
        self.tableID = tableID
        self.fields = fields
        self.baseVersion = baseVersion
        self.createdAt = createdAt
    }
}

/// A write the server could not take now, kept in the offline queue (on disk, with its idempotency
/// key) to be applied once when the queue is replayed.
public struct QueuedWrite: Sendable {
    /// The write's id in the offline queue (`client.offline`, `pyat queue list`).
    public var mutationID: Int64
    /// The record written: for a create, its temporary id, usable in later writes (they queue behind
    /// the create and go out with the server's id once it lands).
    public var record: RecordReference
    /// For a queued create: the temporary id the new record has until the create lands (a later
    /// write to a record created offline names its temporary id in ``record``, not here).
    public var temporaryID: TemporaryRecordID?
    /// The record as reads show it while the write waits; `nil` for a delete, or when an earlier
    /// pending write deletes the record.
    public var optimistic: PendingRecord?
    /// Why the write was queued: the server could not be reached (``PyAirtableError/transportFailure``,
    /// ``PyAirtableError/timeout``, ``PyAirtableError/circuitOpen``), or it waits behind earlier
    /// queued writes of its record; ``queuedBecause`` says it in words.
    public var reason: PyAirtableError
    /// Why the write was queued, in words.
    public var queuedBecause: String
}

/// What a record write came to: saved by the server, or queued offline to be saved on replay.
///
/// ```swift
/// switch try await client.records.create(in: table, fields: ["Name": "Offline draft"]) {
/// case .saved(let record): print("saved as \(record.id)")
/// case .queued(let write): print("queued as #\(write.mutationID); reads show \(write.record)")
/// }
/// let record = try await client.records.update(id, fields: ["Done": true]).get()  // throws if queued
/// ```
public enum WriteResult<Value: Sendable>: Sendable {
    /// The server applied the write and answered this.
    case saved(Value)
    /// The write waits in the offline queue; reads show it meanwhile.
    case queued(QueuedWrite)

    /// The server's answer, or `nil` when the write was queued.
    public var saved: Value? {
        if case .saved(let value) = self { return value }
        return nil
    }

    /// The queued write, or `nil` when the server applied it.
    public var queued: QueuedWrite? {
        if case .queued(let write) = self { return write }
        return nil
    }

    /// Whether the write waits in the offline queue.
    public var isQueued: Bool { queued != nil }

    /// The server's answer; throws ``PyAirtableError/queuedOffline`` when the write was queued instead
    /// (it will still be applied on replay: do not send it again).
    public func get() throws(PyAirtableError) -> Value {
        switch self {
        case .saved(let value): return value
        case .queued(let write): throw PyAirtableError.queuedOffline(write)
        }
    }

    /// The same result with the saved value transformed.
    public func map<T: Sendable>(_ transform: (Value) throws -> T) rethrows -> WriteResult<T> {
        switch self {
        case .saved(let value): .saved(try transform(value))
        case .queued(let write): .queued(write)
        }
    }
}

extension RecordID {
    /// Whether this carries the temporary id of a create still in the offline queue: the write
    /// pipeline's internal form of ``RecordReference/temporary(_:)``; no public answer holds one.
    var isTemporary: Bool { TemporaryRecordID(rawValue) != nil }
}
