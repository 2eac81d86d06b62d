import Foundation
import HTTPTypes
import OfflineQueue
import PyAirtableModels

/// What ``OfflineControl/replay()`` did.
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

    /// Sends the queued writes in order, each with its own idempotency key, until the queue is empty,
    /// the server cannot be reached, or only writes behind failed ones are left.
    ///
    /// A write the server refuses goes to the failed list (see ``OfflineQueue/failed()``) and does not
    /// block writes to other records; a create's temporary id is replaced by the server's id in every
    /// later queued write that names it.
    /// - Parameter progress: Called after each write with the report so far.
    @discardableResult
    public func replay(progress: (@Sendable (ReplayReport) -> Void)? = nil) async throws -> ReplayReport {
        var report = ReplayReport()
        guard let queue = try await queue() else { return report }
        defer { if report.replayed > 0 { Task { await client.cacheAfterWrite(invalidating: [], everything: true) } } }
        while let mutation = try await queue.claimNext() {
            let request = Self.request(for: mutation)
            do {
                let response = try await client.execute(request)
                var resolving: [TemporaryID: String] = [:]
                if let temporary = mutation.createsTemporaryIDs.first {
                    let created = try JSONCoding.decoder.decode(IdentifiedResource.self, from: response.body)
                    resolving[temporary] = created.id
                }
                try await queue.complete(mutation.id, resolving: resolving)
                report.replayed += 1
                if response.headerFields[.idempotentReplayed] == "true" { report.alreadyApplied += 1 }
            } catch let error as PyAirtableError where error.isRetryable {
                _ = try await queue.fail(mutation.id, failure: Self.failure(error), retryable: true)
                report.stoppedBy = error
                break
            } catch let error as PyAirtableError {
                _ = try await queue.fail(mutation.id, failure: Self.failure(error), retryable: false)
                report.failed += 1
            }
            progress?(report)
        }
        let counts = try await queue.counts()
        report.remaining = counts.pending + counts.inflight
        return report
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
            body: mutation.request.body,
            operation: ClientOperation(service: "offline", name: "replay")
        )
    }

    static func failure(_ error: PyAirtableError) -> QueuedMutation.Failure {
        QueuedMutation.Failure(status: error.status, message: error.message, occurredAt: Date())
    }
}

/// Any resource's `id`, to learn the server id of a replayed create.
private struct IdentifiedResource: Decodable {
    var id: String
}
