import Foundation
import HTTPTypes
import Metrics
import OfflineQueue
import PyAirtableModels

/// What ``OfflineControl/replay(progress:)`` did.
public struct ReplayReport: Sendable, Hashable {
    /// Writes the server accepted (or had already applied: see ``alreadyApplied``).
    public var replayed = 0
    /// Of those, writes the server had already applied before (an answer lost on the way): it
    /// answered from its idempotency store and applied nothing twice.
    public var alreadyApplied = 0
    /// Writes the server refused (404, 412, 422, …), now in the failed list.
    public var failed = 0
    /// Writes still queued (the server became unreachable again, or they wait behind a failed one).
    public var remaining = 0
    /// Why replay stopped early, when the server could not be reached.
    public var stoppedBy: PyAirtableError?

    public init() {}

    public static func == (lhs: ReplayReport, rhs: ReplayReport) -> Bool {
        lhs.replayed == rhs.replayed && lhs.alreadyApplied == rhs.alreadyApplied && lhs.failed == rhs.failed
            && lhs.remaining == rhs.remaining
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(replayed)
        hasher.combine(failed)
        hasher.combine(remaining)
    }
}

/// The offline queue of the signed-in account; see ``PyAirtableClient/offline``.
public struct OfflineControl: Sendable {
    let client: PyAirtableClient

    /// Whether writes are queued when the server cannot be reached.
    public var isEnabled: Bool { client.offlineQueues != nil }

    /// The account's queue; `nil` when the offline queue is off.
    public func queue() async throws -> OfflineQueue? {
        guard let queues = client.offlineQueues else { return nil }
        return try queues.queue(for: await client.cacheIdentity())
    }

    /// How many writes are pending, in flight and failed.
    public func counts() async throws -> QueueCounts {
        try await queue()?.counts() ?? QueueCounts()
    }

    /// Sends the queued writes in order until the queue is empty, the server cannot be reached, or only
    /// writes behind failed ones are left.
    ///
    /// Record writes to one table go up to 100 at a time through the batch endpoint, under one
    /// idempotency key kept in the queue with the group (see `OfflineQueue.claimBatch(maximum:)`): a
    /// batch interrupted by a crash is sent again whole with the same key, and the server answers it
    /// from its idempotency store. Other writes go one by one, each with its own key.
    ///
    /// A write the server refuses goes to the failed list (see `OfflineQueue.failed()`) and does not
    /// block writes to other records; when the server refuses a batch — all or nothing, so none of it was
    /// applied — its writes are sent again one by one, so only the bad one fails. A create's temporary
    /// id is replaced by the server's id in every later queued write that names it.
    /// - Parameter progress: Called after each write or batch with the report so far.
    @discardableResult
    public func replay(progress: (@Sendable (ReplayReport) -> Void)? = nil) async throws -> ReplayReport {
        var report = ReplayReport()
        guard let queue = try await queue() else { return report }
        defer { if report.replayed > 0 { Task { await client.cacheAfterWrite(invalidating: [], everything: true) } } }
        replaying: while true {
            let mutations = try await queue.claimBatch(maximum: BatchRequest.maximumOperations)
            guard !mutations.isEmpty else { break }
            let outcome: Outcome
            if mutations[0].batchIdempotencyKey != nil {
                outcome = try await sendBatch(mutations, queue: queue, report: &report)
            } else {
                var stopped = false
                for mutation in mutations where !stopped {
                    stopped = try await sendAlone(mutation, queue: queue, report: &report) == .stop
                }
                outcome = stopped ? .stop : .next
            }
            progress?(report)
            if outcome == .stop { break replaying }
        }
        let counts = try await queue.counts()
        report.remaining = counts.pending + counts.inflight
        // The success rate of offline writes: replayed against refused.
        let prefix = client.configuration.metricsPrefix
        Counter(label: "\(prefix)_offline_replayed_total").increment(by: Int64(report.replayed))
        Counter(label: "\(prefix)_offline_refused_total").increment(by: Int64(report.failed))
        return report
    }

    private enum Outcome {
        case next
        case stop
    }

    /// Sends one mutation with its own key and reports it to the queue.
    private func sendAlone(
        _ mutation: QueuedMutation,
        queue: OfflineQueue,
        report: inout ReplayReport
    ) async throws
        -> Outcome
    {
        do {
            let response: ClientResponse
            do {
                response = try await client.execute(Self.request(for: mutation))
            } catch let error as PyAirtableError where error == .preconditionFailed {
                guard let settled = try await settle(mutation, conflict: error) else { throw error }
                response = settled
            }
            var resolving: [TemporaryID: String] = [:]
            if let temporary = mutation.createsTemporaryIDs.first {
                let created = try JSONCoding.decoder.decode(IdentifiedResource.self, from: response.data)
                resolving[temporary] = created.id
            }
            try await queue.complete(mutation.id, resolving: resolving)
            await confirm([mutation], answers: [response.data])
            report.replayed += 1
            if response.headerFields[.idempotentReplayed] == "true" { report.alreadyApplied += 1 }
            return .next
        } catch let error where Self.isCancellation(error) {
            // Stopped (the client shutting down), not refused: the write goes back, with its key, for
            // the next replay.
            try await queue.release([mutation.id])
            throw CancellationError()
        } catch let error as PyAirtableError where error.isRetryable {
            _ = try await queue.fail(mutation.id, failure: Self.failure(error), retryable: true)
            report.stoppedBy = error
            return .stop
        } catch let error as PyAirtableError {
            _ = try await queue.fail(mutation.id, failure: Self.failure(error), retryable: false)
            client.optimistic.settleQueued([mutation.id], confirmed: false, error: error)
            report.failed += 1
            return .next
        }
    }

    /// Settles a 412 met on replay by the configured strategy (see ``ConflictSettings``), against the
    /// fields the write started from, kept with it in the queue; answers the settling write's response
    /// (a server-wins settlement answers the current record), or `nil` when the write is not a record
    /// update, replace or delete.
    private func settle(_ mutation: QueuedMutation, conflict: PyAirtableError) async throws -> ClientResponse? {
        let request = mutation.request
        let prefix = "/api/v1/records/"
        guard request.path.hasPrefix(prefix), let id = RecordID(String(request.path.dropFirst(prefix.count)))
        else { return nil }
        let fields = request.body.flatMap { try? JSONCoding.decoder.decode(RecordFieldsRequest.self, from: $0) }?
            .fields
        let write: RecordWrite
        switch (request.method, fields) {
        case ("PATCH", let fields?): write = .update(id, fields: fields)
        case ("PUT", let fields?): write = .replace(id, fields: fields)
        case ("DELETE", _): write = .delete(id)
        default: return nil
        }
        let base = request.conflictBase.flatMap { try? JSONCoding.decoder.decode([String: FieldValue].self, from: $0) }
        let answer = try await client.settleConflict(
            write,
            error: conflict,
            base: base,
            baseVersion: request.headers.first { $0.key.caseInsensitiveCompare("If-Match") == .orderedSame }
                .flatMap { VersionTag.parse($0.value) },
            strategy: client.configuration.conflicts.strategy,
            idempotencyKey: mutation.idempotencyKey,
            duringReplay: true
        )
        let body: Data
        switch answer {
        case .record(let record): body = try JSONCoding.encoder.encode(record)
        case .deleted(let deleted): body = try JSONCoding.encoder.encode(deleted)
        }
        return ClientResponse(status: .ok, headerFields: [:], body: body)
    }

    /// Brings the cache in line with replayed writes (their answers, in order) and removes their layers.
    private func confirm(_ mutations: [QueuedMutation], answers: [Data]) async {
        var tags: [CacheTag] = []
        var stored: [CacheWrite] = []
        for (mutation, body) in zip(mutations, answers) {
            let parts = mutation.request.path.split(separator: "/")
            if mutation.request.method == "POST", parts.count == 5, parts[2] == "tables",
                let table = TableID(String(parts[3]))
            {
                tags.append(.recordLists(of: table))
            }
            if let record = try? JSONCoding.decoder.decode(Record.self, from: body) {
                tags += [.record(record.id), .recordLists(of: record.tableID)]
                if let write = CacheWrite.record(record) { stored.append(write) }
            } else if let deleted = try? JSONCoding.decoder.decode(DeletedRecord.self, from: body) {
                tags.append(.record(deleted.id))
            }
        }
        if !tags.isEmpty || !stored.isEmpty {
            await client.cacheAfterWrite(invalidating: Array(Set(tags)), storing: stored)
        }
        client.optimistic.settleQueued(mutations.map(\.id), confirmed: true)
    }

    /// Sends a batch group with the group's key and reports it to the queue as a unit; when the server
    /// refuses it, sends its mutations one by one instead.
    private func sendBatch(
        _ mutations: [QueuedMutation],
        queue: OfflineQueue,
        report: inout ReplayReport
    ) async throws
        -> Outcome
    {
        let ids = mutations.map(\.id)
        guard let request = Self.batchRequest(for: mutations) else {
            // Not record writes the batch endpoint takes (a queue written by another version): the
            // group was never sent as a batch, so its writes may go one by one.
            try await queue.dissolveBatch(ids)
            return try await sendEachAlone(mutations, queue: queue, report: &report)
        }
        do {
            let response = try await client.execute(request)
            let results = try JSONCoding.decoder.decode(BatchResponse.self, from: response.data).results
            var resolving: [TemporaryID: String] = [:]
            for (mutation, result) in zip(mutations, results) {
                if let temporary = mutation.createsTemporaryIDs.first, case .record(let record) = result {
                    resolving[temporary] = record.id.rawValue
                }
            }
            try await queue.complete(ids, resolving: resolving)
            await confirm(
                mutations,
                answers: results.map { result in
                    switch result {
                    case .record(let record): (try? JSONCoding.encoder.encode(record)) ?? Data()
                    case .deleted(let id): (try? JSONCoding.encoder.encode(DeletedRecord(id: id))) ?? Data()
                    }
                }
            )
            report.replayed += mutations.count
            if response.headerFields[.idempotentReplayed] == "true" { report.alreadyApplied += mutations.count }
            return .next
        } catch let error where Self.isCancellation(error) {
            // Stopped, not refused: the group goes back whole, with its key, for the next replay.
            try await queue.release(ids)
            throw CancellationError()
        } catch let error as PyAirtableError where error.isRetryable {
            // The answer may have been lost after the server applied the batch: keep the group and its
            // key for the next attempt.
            for id in ids { _ = try await queue.fail(id, failure: Self.failure(error), retryable: true) }
            report.stoppedBy = error
            return .stop
        } catch let error as PyAirtableError where (400..<500).contains(error.status ?? 0) {
            // A batch is all or nothing and the server refused it: nothing was applied, so each write
            // may go on its own, and only the bad one lands in the failed list.
            try await queue.dissolveBatch(ids)
            return try await sendEachAlone(mutations, queue: queue, report: &report)
        } catch {
            // Applied or not, nobody can tell (a 500, an answer that cannot be read): the group stays
            // whole, with its key, in the failed list.
            let failure =
                (error as? PyAirtableError).map(Self.failure)
                ?? QueuedMutation.Failure(message: "\(error)", occurredAt: Date())
            for id in ids { _ = try await queue.fail(id, failure: failure, retryable: false) }
            client.optimistic.settleQueued(ids, confirmed: false, error: error as? PyAirtableError)
            report.failed += mutations.count
            return .next
        }
    }

    /// Whether `error` means the replay was stopped: the task was cancelled (the chain reports that
    /// as ``PyAirtableError/cancelled``).
    private static func isCancellation(_ error: any Error) -> Bool {
        error is CancellationError || (error as? PyAirtableError) == .cancelled
    }

    private func sendEachAlone(
        _ mutations: [QueuedMutation],
        queue: OfflineQueue,
        report: inout ReplayReport
    )
        async throws -> Outcome
    {
        for (index, mutation) in mutations.enumerated() {
            let outcome: Outcome
            do {
                outcome = try await sendAlone(mutation, queue: queue, report: &report)
            } catch {
                // Stopped: the ones not tried go back too (their lease would free them later anyway).
                try? await queue.release(mutations[(index + 1)...].map(\.id))
                throw error
            }
            if outcome == .stop {
                // Give back the ones not tried: they were not sent, so no attempt is counted.
                try await queue.release(mutations[(index + 1)...].map(\.id))
                return .stop
            }
        }
        return .next
    }

    /// Waits until nothing is pending or in flight (failed writes aside).
    public func waitForPendingWrites() async throws {
        try await queue()?.waitUntilDrained()
    }

    static func request(for mutation: QueuedMutation) -> ClientRequest {
        var fields: HTTPFields = [.accept: "application/json"]
        if mutation.request.body != nil { fields[.contentType] = "application/json" }
        fields[.idempotencyKey] = mutation.idempotencyKey
        for (name, value) in mutation.request.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        return ClientRequest(
            method: HTTPRequest.Method(mutation.request.method) ?? .post,
            path: mutation.request.path,
            query: mutation.request.query.map { QueryItem($0.name, $0.value) },
            headerFields: fields,
            body: mutation.request.body.map(HTTPBody.init),
            operation: ClientOperation(service: "offline", name: "replay")
        )
    }

    /// The batch request carrying a group's record writes, with the group's key; `nil` when one of
    /// them is not a record write of the group's table that the batch endpoint takes.
    static func batchRequest(for mutations: [QueuedMutation]) -> ClientRequest? {
        guard let key = mutations.first?.batchIdempotencyKey, let table = mutations.first?.batchKey,
            mutations.count <= BatchRequest.maximumOperations
        else { return nil }
        var operations: [BatchOperation] = []
        operations.reserveCapacity(mutations.count)
        for mutation in mutations {
            guard mutation.batchIdempotencyKey == key, mutation.batchKey == table,
                let operation = batchOperation(for: mutation.request, table: table)
            else { return nil }
            operations.append(operation)
        }
        guard let body = try? JSONCoding.encoder.encode(BatchRequest(operations: operations)) else { return nil }
        let fields: HTTPFields = [
            .accept: "application/json", .contentType: "application/json", .idempotencyKey: key,
        ]
        return ClientRequest(
            method: .post,
            path: "/api/v1/tables/\(table)/records/batch",
            headerFields: fields,
            body: HTTPBody(body),
            operation: ClientOperation(service: "offline", name: "replayBatch")
        )
    }

    /// The batch operation doing what a queued record write does, or `nil` when it is something else.
    static func batchOperation(for request: QueuedRequest, table: String) -> BatchOperation? {
        guard request.query.isEmpty,
            request.headers.keys.allSatisfy({ $0.caseInsensitiveCompare("If-Match") == .orderedSame })
        else { return nil }
        var ifVersion: Int?
        if let tag = request.headers.first?.value {
            guard let version = VersionTag.parse(tag) else { return nil }
            ifVersion = version
        }
        func fields() -> [String: FieldValue]? {
            request.body.flatMap { try? JSONCoding.decoder.decode(RecordFieldsRequest.self, from: $0).fields }
        }
        if request.method == "POST", request.path == "/api/v1/tables/\(table)/records", ifVersion == nil {
            return fields().map { .create(fields: $0) }
        }
        let prefix = "/api/v1/records/"
        guard request.path.hasPrefix(prefix), let id = RecordID(String(request.path.dropFirst(prefix.count)))
        else { return nil }
        switch request.method {
        case "PATCH": return fields().map { .update(id: id, fields: $0, ifVersion: ifVersion) }
        case "PUT": return fields().map { .replace(id: id, fields: $0, ifVersion: ifVersion) }
        case "DELETE": return .delete(id: id, ifVersion: ifVersion)
        default: return nil
        }
    }

    static func failure(_ error: PyAirtableError) -> QueuedMutation.Failure {
        QueuedMutation.Failure(status: error.status, message: error.message, occurredAt: Date())
    }
}

/// Any resource's `id`, to learn the server id of a replayed create.
private struct IdentifiedResource: Decodable {
    var id: String
}
