import Foundation
import HTTPTypes
import Logging
import OfflineQueue
import PyAirtableModels
import Synchronization

/// The client's offline queues, one per account, opened on first use.
final class OfflineQueues: Sendable {
    let settings: PyAirtableClient.OfflineSettings
    let serverURL: String
    let logger: Logger
    private let queues = Mutex<[String: OfflineQueue]>([:])
    init(settings: PyAirtableClient.OfflineSettings, serverURL: URL, logger: Logger) {
        self.settings = settings
        var server = serverURL.absoluteString
        while server.hasSuffix("/") { server.removeLast() }
        self.serverURL = server
        self.logger = logger
    }

    func queue(for identity: String) throws -> OfflineQueue {
        if let queue = queues.withLock({ $0[identity] }) { return queue }
        try createPrivateDirectory(containing: settings.path)
        let queue = try OfflineQueue(
            configuration: OfflineQueue.Configuration(
                path: settings.path,
                namespace: QueueNamespace(serverURL: serverURL, user: identity),
                maximumEntries: settings.maximumEntries,
                maximumBytes: settings.maximumBytes
            ),
            logger: logger
        )
        return queues.withLock { queues in
            if let raced = queues[identity] { return raced }
            queues[identity] = queue
            return queue
        }
    }
}

extension PyAirtableClient {
    /// The offline queue of the signed-in account: what is waiting, replay, the failed list.
    public var offline: OfflineControl { OfflineControl(client: self) }

    /// Sends a write; when the server cannot be reached and the offline queue is on, queues it (same
    /// idempotency key) and throws ``PyAirtableError/queuedOffline``, which the record write turns into
    /// ``WriteResult/queued(_:)``.
    ///
    /// `conflictBase` (the fields at the version `If-Match` names) is kept with a queued write for
    /// settling a 412 on replay; `queueFirst` queues the write without trying the server, behind
    /// earlier queued writes of its record.
    func sendOrQueue<T: Decodable>(
        _ request: ClientRequest,
        as type: T.Type,
        scope: String?,
        creates temporaryID: TemporaryID? = nil,
        conflictBase: Data? = nil,
        queueFirst: Bool = false,
        batchTable: TableID? = nil
    ) async throws -> T {
        var request = request
        if queueFirst, offlineQueues != nil {
            return try await queueWrite(
                request,
                scope: scope,
                creates: temporaryID,
                conflictBase: conflictBase,
                batchTable: batchTable,
                cause: nil,
                waiting: WaitingBehindQueuedWrites()
            )
        }
        if let offlineQueues, case let temporaryIDs = Self.temporaryIDs(in: request), !temporaryIDs.isEmpty {
            // A write naming records created offline: once their creates landed it goes out with the
            // server's ids; until then it waits in the queue behind them.
            let queue = try offlineQueues.queue(for: await cacheIdentity())
            var unresolved = false
            for temporaryID in temporaryIDs {
                if let serverID = try await queue.serverID(for: temporaryID) {
                    request = Self.replacing(temporaryID.rawValue, with: serverID, in: request)
                } else {
                    unresolved = true
                }
            }
            if unresolved {
                return try await queueWrite(
                    request,
                    scope: scope,
                    creates: temporaryID,
                    conflictBase: conflictBase,
                    batchTable: batchTable,
                    cause: nil,
                    waiting: WaitingForOfflineCreate()
                )
            }
        }
        do {
            if offlineQueues?.settings.queueWithoutTrying == true {
                throw PyAirtableError.transport(OfflineByChoice(), operation: request.operation)
            }
            return try await send(request, as: type)
        } catch let error as PyAirtableError where error.isConnectivityFailure {
            guard offlineQueues != nil else { throw error }
            return try await queueWrite(
                request,
                scope: scope,
                creates: temporaryID,
                conflictBase: conflictBase,
                batchTable: batchTable,
                cause: error,
                waiting: nil
            )
        }
    }

    /// Writes `request` to the offline queue (same idempotency key) and throws
    /// ``PyAirtableError/queuedOffline``.
    private func queueWrite<T>(
        _ request: ClientRequest,
        scope: String?,
        creates temporaryID: TemporaryID?,
        conflictBase: Data?,
        batchTable: TableID?,
        cause: PyAirtableError?,
        waiting: (any Error)?
    ) async throws -> T {
        guard let offlineQueues else { throw cause ?? PyAirtableError.invalidArgument("the offline queue is off") }
        let queue = try offlineQueues.queue(for: await cacheIdentity())
        var headers: [String: String] = [:]
        if let ifMatch = request.headerFields[.ifMatch] { headers["If-Match"] = ifMatch }
        let mutation = try await queue.enqueue(
            QueuedRequest(
                method: request.method.rawValue,
                path: request.path,
                query: request.query.map { QueuedRequest.QueryItem(name: $0.name, value: $0.value) },
                headers: headers,
                body: request.bodyData,
                conflictBase: conflictBase
            ),
            scope: temporaryID?.rawValue ?? scope,
            // Creates name their table, so replay may send them through its batch endpoint; writes to
            // `/records/{id}` do not say which table the record is in: they join batches when the
            // caller knows it (the record is cached), else they go one by one.
            batchKey: {
                if let batchTable { return batchTable.rawValue }
                let parts = request.path.split(separator: "/")
                guard request.method == .post, parts.count == 5, parts[0] == "api", parts[2] == "tables",
                    parts[4] == "records"
                else { return nil }
                return String(parts[3])
            }(),
            creates: temporaryID.map { [$0] } ?? [],
            idempotencyKey: request.headerFields[.idempotencyKey] ?? UUID().uuidString.lowercased()
        )
        if cause == nil {
            // Queued only to wait for an earlier create: the server may well be up, so replay now.
            replayScheduler.trigger(.writeQueued, client: self)
        } else {
            // The server cannot be reached: replay once a probe sees it answer again.
            replayScheduler.serverUnreachable(client: self)
        }
        throw PyAirtableError.queuedOffline(
            mutation: mutation.id,
            temporaryID: temporaryID?.rawValue,
            operation: request.operation,
            cause: cause
                ?? PyAirtableError.transport(waiting ?? WaitingForOfflineCreate(), operation: request.operation)
        )
    }

    /// The temporary ids (`tmp_` and 14 letters or digits) named in a request's path or body.
    static func temporaryIDs(in request: ClientRequest) -> [TemporaryID] {
        var found: [TemporaryID] = []
        for text in [request.path, request.bodyData.map { String(decoding: $0, as: UTF8.self) } ?? ""] {
            var rest = text[...]
            while let range = rest.range(of: "tmp_") {
                let candidate = String(text[range.lowerBound...].prefix(18))
                if let id = TemporaryID(candidate), !found.contains(id) { found.append(id) }
                rest = text[range.upperBound...]
            }
        }
        return found
    }

    /// `request` with every `temporary` replaced by `serverID` in its path and body.
    static func replacing(_ temporary: String, with serverID: String, in request: ClientRequest) -> ClientRequest {
        var request = request
        request.path = request.path.replacingOccurrences(of: temporary, with: serverID)
        if let body = request.bodyData {
            request.body = HTTPBody(
                Data(String(decoding: body, as: UTF8.self).replacingOccurrences(of: temporary, with: serverID).utf8)
            )
        }
        return request
    }
}

/// A write waits in the queue behind earlier writes of its record, queued and not yet replayed.
struct WaitingBehindQueuedWrites: Error, CustomStringConvertible {
    var description: String { "earlier writes of the record wait in the offline queue" }
}

/// A write waits in the queue for the create of a record it names.
struct WaitingForOfflineCreate: Error, CustomStringConvertible {
    var description: String { "it names a record created offline, not yet sent" }
}

/// The configuration asked to work offline.
struct OfflineByChoice: Error, CustomStringConvertible {
    var description: String { "working offline" }
}

extension PyAirtableError {
    /// For ``queuedOffline``: why the write went to the queue, in words — the server could not be
    /// reached, working offline on purpose, it names a record created offline, or earlier writes of
    /// its record wait there.
    var queuedBecause: String? {
        guard queuedMutationID != nil, let cause = underlying as? PyAirtableError else { return nil }
        switch cause.underlying {
        case let waiting as WaitingBehindQueuedWrites: return waiting.description
        case let waiting as WaitingForOfflineCreate: return waiting.description
        case let choice as OfflineByChoice: return choice.description
        default: return "the server could not be reached"
        }
    }
}

extension OfflineControl {
    /// Whether writes to `record` wait in the queue — for showing a "not yet saved" mark.
    public func hasPendingWrites(for record: RecordID) async throws -> Bool {
        try await queue()?.hasPendingWrites(scope: record.rawValue) ?? false
    }

    /// Whether writes to a record created offline (its create, or later writes) wait in the queue.
    public func hasPendingWrites(for record: TemporaryRecordID) async throws -> Bool {
        try await queue()?.hasPendingWrites(scope: record.rawValue) ?? false
    }
}
