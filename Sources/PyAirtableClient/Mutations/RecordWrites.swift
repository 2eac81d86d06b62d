import Foundation
import HTTPTypes
import Logging
import Metrics
import OfflineQueue
import PyAirtableModels
import Synchronization

/// A record write as the SDK runs it: with an optimistic layer, in order after earlier writes to the
/// same record, with conflicts settled, and the cache brought in line with the answer.
enum RecordWrite: Sendable {
    case create(table: TableID, fields: [String: FieldValue], temporaryID: TemporaryID)
    case update(RecordID, fields: [String: FieldValue])
    case replace(RecordID, fields: [String: FieldValue])
    case delete(RecordID)

    var recordID: RecordID {
        switch self {
        case .create(_, _, let temporaryID): RecordID(unchecked: temporaryID.rawValue)
        case .update(let id, _), .replace(let id, _), .delete(let id): id
        }
    }

    var change: OptimisticLayer.Change {
        switch self {
        case .create(let table, let fields, _): .create(table: table, fields: fields)
        case .update(_, let fields): .update(fields)
        case .replace(_, let fields): .replace(fields)
        case .delete: .delete
        }
    }

    var localFields: [String: FieldValue] {
        switch self {
        case .create(_, let fields, _), .update(_, let fields), .replace(_, let fields): fields
        case .delete: [:]
        }
    }

    var reportKind: ConflictReport.Write {
        switch self {
        case .create, .update: .update
        case .replace: .replace
        case .delete: .delete
        }
    }

    var operationName: String {
        switch self {
        case .create: "create"
        case .update: "update"
        case .replace: "replace"
        case .delete: "delete"
        }
    }

    /// The request carrying the write, with `If-Match` when `ifVersion` is given.
    func request(ifVersion: Int?, idempotencyKey: String? = nil) throws -> ClientRequest {
        let operation = RecordsService.operation(operationName)
        switch self {
        case .create(let table, let fields, _):
            return try PyAirtableClient.request(
                .post,
                "/api/v1/tables/\(table)/records",
                body: RecordFieldsRequest(fields: fields),
                operation: operation,
                idempotencyKey: idempotencyKey
            )
        case .update(let id, let fields):
            return try PyAirtableClient.request(
                .patch,
                "/api/v1/records/\(id)",
                body: RecordFieldsRequest(fields: fields),
                operation: operation,
                ifMatch: ifVersion,
                idempotencyKey: idempotencyKey
            )
        case .replace(let id, let fields):
            return try PyAirtableClient.request(
                .put,
                "/api/v1/records/\(id)",
                body: RecordFieldsRequest(fields: fields),
                operation: operation,
                ifMatch: ifVersion,
                idempotencyKey: idempotencyKey
            )
        case .delete(let id):
            return try PyAirtableClient.request(
                .delete,
                "/api/v1/records/\(id)",
                operation: operation,
                ifMatch: ifVersion,
                idempotencyKey: idempotencyKey
            )
        }
    }

    /// The same write with other fields (the merged ones).
    func with(fields: [String: FieldValue]) -> RecordWrite {
        switch self {
        case .create(let table, _, let temporaryID): .create(table: table, fields: fields, temporaryID: temporaryID)
        case .update(let id, _): .update(id, fields: fields)
        case .replace(let id, _): .replace(id, fields: fields)
        case .delete: self
        }
    }
}

/// What a record write answered.
enum RecordWriteAnswer: Sendable {
    case record(Record)
    case deleted(DeletedRecord)
}

/// Runs writes of one scope (a record) one after another, in the order they were asked for; writes of
/// other scopes run in parallel.
final class ScopeSerializer: Sendable {
    private let waiting = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    /// Returns when the scope is this caller's; pair with ``release(_:)``.
    func acquire(_ scope: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let runsNow = waiting.withLock { waiting -> Bool in
                if waiting[scope] == nil {
                    waiting[scope] = []
                    return true
                }
                waiting[scope]?.append(continuation)
                return false
            }
            if runsNow { continuation.resume() }
        }
    }

    func release(_ scope: String) {
        let next: CheckedContinuation<Void, Never>? = waiting.withLock { waiting in
            guard var queue = waiting[scope] else { return nil }
            if queue.isEmpty {
                waiting.removeValue(forKey: scope)
                return nil
            }
            let next = queue.removeFirst()
            waiting[scope] = queue
            return next
        }
        next?.resume()
    }
}

extension PyAirtableClient {
    /// Runs a record write: its optimistic layer is visible at once; it waits for earlier writes to the
    /// same record; it sends `If-Match` with the version it starts from; a 412 is settled by `strategy`;
    /// the answer replaces the layer in the cache. A write that cannot reach the server keeps its layer
    /// and waits in the offline queue (answered ``WriteResult/queued(_:)``); one the server refuses
    /// drops only its own layer.
    func performRecordWrite(
        _ write: RecordWrite,
        ifVersion: Int?,
        base: Record?,
        strategy: ConflictStrategy?
    ) async throws -> WriteResult<RecordWriteAnswer> {
        let layer = OptimisticLayer(recordID: write.recordID, change: write.change, createdAt: Date())
        let layered = configuration.optimisticUpdates
        if layered { optimistic.add(layer) }
        let scope = write.recordID.rawValue
        await scopes.acquire(scope)
        defer { scopes.release(scope) }
        do {
            let answer = try await sendRecordWrite(write, ifVersion: ifVersion, base: base, strategy: strategy)
            switch answer {
            case .record(let record):
                recentReads.remember([record])
                if case .create(let table, _, _) = write {
                    await cacheAfterWrite(
                        invalidating: [.recordLists(of: table)],
                        storing: [CacheWrite.record(record)].compactMap { $0 }
                    )
                } else {
                    await cacheAfterWrite(written: record)
                }
            case .deleted(let deleted):
                if deleted.deleted { await cacheAfterWrite(invalidating: [.record(deleted.id)]) }
            }
            if layered { optimistic.confirm(layer) }
            optimisticCounter("confirmed")
            return .saved(answer)
        } catch let error as PyAirtableError where error.queuedMutationID != nil {
            if layered { optimistic.queue(layer, as: error.queuedMutationID) }
            optimisticCounter("queued")
            return .queued(await queuedWrite(write, error: error))
        } catch {
            if layered { optimistic.rollBack(layer, error: error as? PyAirtableError) }
            optimisticCounter("rolled_back")
            throw error
        }
    }

    /// The result of a write the offline queue took: its id, and the record as reads now show it.
    ///
    /// Worked out from the write itself and the layers this client holds in memory, never by reading
    /// the queue file back: queuing thousands of writes stays linear.
    private func queuedWrite(_ write: RecordWrite, error: PyAirtableError) async -> QueuedWrite {
        let reference = RecordReference(internal: write.recordID)
        let optimistic: PendingRecord?
        switch write {
        case .delete:
            optimistic = nil
        case .create(let table, let fields, _):
            optimistic = PendingRecord(
                id: reference,
                tableID: table,
                fields: fields.filter { !$0.value.isBlank },
                createdAt: Date()
            )
        case .update, .replace:
            if let pending = await pendingRecord(write.recordID, layers: self.optimistic.all) {
                optimistic = pending
            } else if configuration.optimisticUpdates {
                // The layers are on and none makes the record: an earlier pending write deletes it.
                optimistic = nil
            } else {
                optimistic = PendingRecord(id: reference, tableID: nil, fields: write.localFields, createdAt: Date())
            }
        }
        var created: TemporaryRecordID?
        if case .create(_, _, let temporaryID) = write { created = temporaryID }
        return QueuedWrite(
            mutationID: error.queuedMutationID ?? 0,
            record: reference,
            temporaryID: created,
            optimistic: optimistic,
            reason: error.underlying as? PyAirtableError ?? error,
            queuedBecause: error.queuedBecause ?? "the server could not be reached"
        )
    }

    /// A record as this client's pending writes make it (see ``PendingRecord``), or `nil` when no
    /// pending write touches it (or one deletes it).
    func pendingRecord(_ id: RecordID, layers all: [OptimisticLayer]? = nil) async -> PendingRecord? {
        var all = all
        if all == nil { all = await pendingLayers() }
        let layers = (all ?? []).filter { $0.recordID == id }
        guard let first = layers.first else { return nil }
        if id.isTemporary {
            guard let created = OptimisticLayers.created(id, from: layers) else { return nil }
            return PendingRecord(
                id: RecordReference(internal: id),
                tableID: created.tableID,
                fields: created.fields,
                createdAt: first.createdAt
            )
        }
        let held = [await confirmedRecord(id), recentReads.find(id)].compactMap { $0 }.max { $0.version < $1.version }
        if let held {
            guard let applied = OptimisticLayers.apply(layers, to: held) else { return nil }
            return PendingRecord(
                id: .server(id),
                tableID: held.tableID,
                fields: applied.fields,
                baseVersion: held.version,
                createdAt: first.createdAt
            )
        }
        var fields: [String: FieldValue] = [:]
        for layer in layers {
            switch layer.change {
            case .update(let changed): fields.merge(changed) { $1 }
            case .replace(let replaced): fields = replaced
            case .delete: return nil
            case .create(_, let created): fields = created
            }
        }
        return PendingRecord(id: .server(id), tableID: nil, fields: fields, createdAt: first.createdAt)
    }

    private func optimisticCounter(_ outcome: String) {
        Counter(label: "\(configuration.metricsPrefix)_optimistic_writes_total", dimensions: [("outcome", outcome)])
            .increment()
    }

    /// Sends the write (or queues it), settling a 412.
    private func sendRecordWrite(
        _ write: RecordWrite,
        ifVersion: Int?,
        base given: Record?,
        strategy: ConflictStrategy?
    ) async throws -> RecordWriteAnswer {
        var ifVersion = ifVersion
        var base: Record? = given
        var queuedAhead = false
        var table: TableID?
        if case .create = write {
            // Nothing to compare with.
        } else {
            let id = write.recordID
            if let offlineQueues, !id.isTemporary {
                let queue = try offlineQueues.queue(for: await cacheIdentity())
                queuedAhead = try await queue.hasPendingWrites(scope: id.rawValue)
            }
            // Behind writes still queued, the version this one starts from is theirs, not yet known:
            // it goes without `If-Match` unless the caller named one.
            // The version the edit starts from: the newest the client holds — cached, or last read.
            let held: Record? =
                id.isTemporary || base != nil
                ? nil
                : [await confirmedRecord(id), recentReads.find(id)].compactMap { $0 }.max { $0.version < $1.version }
            if base == nil, !queuedAhead, let held {
                if let ifVersion {
                    if held.version == ifVersion { base = held }
                } else if configuration.conflicts.sendsBaseVersion {
                    ifVersion = held.version
                    base = held
                }
            }
            // Known, the record's table lets a queued write join replay's batches.
            table = id.isTemporary ? nil : (base ?? held)?.tableID
        }
        let request = try write.request(ifVersion: ifVersion)
        let conflictBase = base.flatMap { try? JSONCoding.encoder.encode($0.fields) }
        let creates: TemporaryID? = {
            if case .create(_, _, let temporaryID) = write { return temporaryID }
            return nil
        }()
        do {
            switch write {
            case .delete:
                let deleted = try await sendOrQueue(
                    request,
                    as: DeletedRecord.self,
                    scope: write.recordID.rawValue,
                    conflictBase: conflictBase,
                    queueFirst: queuedAhead,
                    batchTable: table
                )
                return .deleted(deleted)
            default:
                let record = try await sendOrQueue(
                    request,
                    as: Record.self,
                    scope: creates == nil ? write.recordID.rawValue : nil,
                    creates: creates,
                    conflictBase: conflictBase,
                    queueFirst: queuedAhead,
                    batchTable: table
                )
                return .record(record)
            }
        } catch let error as PyAirtableError where error == .preconditionFailed {
            return try await settleConflict(
                write,
                error: error,
                base: base?.fields,
                baseVersion: ifVersion,
                strategy: strategy ?? configuration.conflicts.strategy,
                idempotencyKey: request.headerFields[.idempotencyKey] ?? UUID().uuidString.lowercased(),
                duringReplay: false
            )
        }
    }

    /// The record as the cache holds it from the server (no pending layers applied), if it does.
    func confirmedRecord(_ id: RecordID) async -> Record? {
        guard let responseCache, let engine = responseCache.engine(for: await cacheIdentity()),
            let entry = engine.get(CacheKeys.record(id))?.entry
        else { return nil }
        return try? JSONCoding.decoder.decode(Record.self, from: entry.value)
    }

    /// Settles a 412 met by `write` under `strategy`, reporting it; sends the settling write over the
    /// server's current version (again, if the record changes once more, up to
    /// ``ConflictSettings/maximumAttempts`` times).
    func settleConflict(
        _ write: RecordWrite,
        error: PyAirtableError,
        base: [String: FieldValue]?,
        baseVersion: Int?,
        strategy: ConflictStrategy,
        idempotencyKey: String,
        duringReplay: Bool
    ) async throws -> RecordWriteAnswer {
        var error = error
        var base = base
        var baseVersion = baseVersion
        var write = write
        let original = write.localFields
        let replacing: Bool
        if case .replace = write { replacing = true } else { replacing = false }
        for _ in 0..<max(1, configuration.conflicts.maximumAttempts) {
            guard let server = try? error.current(as: Record.self) else { throw error }
            var report = ConflictReport(
                recordID: server.id,
                write: write.reportKind,
                strategy: strategy.name,
                baseVersion: baseVersion,
                server: server,
                local: original,
                fields: ThreeWayMerge.differences(
                    base: base,
                    local: write.localFields,
                    server: server.fields,
                    replacing: replacing
                ),
                outcome: .thrown,
                sent: nil,
                result: nil,
                duringReplay: duringReplay,
                occurredAt: Date()
            )
            var settling: RecordWrite?
            switch strategy {
            case .fail:
                reportConflict(report)
                throw error
            case .serverWins:
                report.outcome = .keptServer
                report.result = server
                reportConflict(report)
                if case .delete(let id) = write { return .deleted(DeletedRecord(id: id, deleted: false)) }
                return .record(server)
            case .clientWins:
                settling = write
                report.outcome = write.reportKind == .delete ? .deleted : .sentLocal
            case .merge(let handler):
                switch write {
                case .delete:
                    settling = write
                    report.outcome = .deleted
                case .replace:
                    let merged = await ThreeWayMerge.mergeReplace(
                        base: base,
                        local: write.localFields,
                        server: server.fields,
                        handler: handler
                    )
                    report.fields = merged.conflicts
                    if merged.changes {
                        settling = write.with(fields: merged.fields)
                        report.outcome = .sentMerged
                    } else {
                        report.outcome = .keptServer
                    }
                default:
                    let merged = await ThreeWayMerge.mergeUpdate(
                        base: base,
                        local: write.localFields,
                        server: server.fields,
                        handler: handler
                    )
                    report.fields = merged.conflicts
                    if merged.send.isEmpty {
                        report.outcome = .keptServer
                    } else {
                        settling = write.with(fields: merged.send)
                        report.outcome = .sentMerged
                    }
                }
            }
            guard let settling else {
                report.result = server
                reportConflict(report)
                return .record(server)
            }
            report.sent = settling.reportKind == .delete ? nil : settling.localFields
            // A key of its own, the same for the same settlement, so a retried settlement applies once.
            let key = "\(idempotencyKey)-settle-v\(server.version)"
            let request = try settling.request(ifVersion: server.version, idempotencyKey: key)
            do {
                let answer: RecordWriteAnswer
                if case .delete = settling {
                    let deleted =
                        duringReplay
                        ? try await send(request, as: DeletedRecord.self)
                        : try await sendOrQueue(
                            request,
                            as: DeletedRecord.self,
                            scope: server.id.rawValue,
                            conflictBase: try? JSONCoding.encoder.encode(server.fields)
                        )
                    answer = .deleted(deleted)
                } else {
                    let record =
                        duringReplay
                        ? try await send(request, as: Record.self)
                        : try await sendOrQueue(
                            request,
                            as: Record.self,
                            scope: server.id.rawValue,
                            conflictBase: try? JSONCoding.encoder.encode(server.fields)
                        )
                    report.result = record
                    answer = .record(record)
                }
                reportConflict(report)
                return answer
            } catch let again as PyAirtableError where again == .preconditionFailed {
                // Changed once more meanwhile: settle again against the newer version.
                report.outcome = .failed
                reportConflict(report)
                error = again
                base = server.fields
                baseVersion = server.version
                write = settling
            } catch {
                report.outcome = .failed
                reportConflict(report)
                throw error
            }
        }
        throw error
    }

    /// Tells the handler, the stream, the log and the metrics about a settled conflict.
    func reportConflict(_ report: ConflictReport) {
        configuration.conflicts.onConflict?(report)
        conflictReports.yield(report)
        configuration.logger.notice(
            "Write conflict settled",
            metadata: [
                "record": "\(report.recordID)",
                "strategy": "\(report.strategy)",
                "outcome": "\(report.outcome.rawValue)",
                "fields": "\(report.fields.map(\.field).joined(separator: ","))",
                "replay": "\(report.duringReplay)",
            ]
        )
        Counter(
            label: "\(configuration.metricsPrefix)_conflicts_total",
            dimensions: [("strategy", report.strategy), ("outcome", report.outcome.rawValue)]
        ).increment()
    }
}
