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
        let directory = (settings.path as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.createDirectory(
                atPath: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        }
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
    /// idempotency key) and throws ``PyAirtableError/queuedOffline``.
    func sendOrQueue<T: Decodable>(
        _ request: ClientRequest,
        as type: T.Type,
        scope: String?,
        creates temporaryID: TemporaryID? = nil
    ) async throws -> T {
        do {
            if offlineQueues?.settings.queueWithoutTrying == true {
                throw PyAirtableError.transport(OfflineByChoice(), operation: request.operation)
            }
            return try await send(request, as: type)
        } catch let error as PyAirtableError where error.isConnectivityFailure {
            guard let offlineQueues else { throw error }
            let queue = try offlineQueues.queue(for: await cacheIdentity())
            var headers: [String: String] = [:]
            if let ifMatch = request.headerFields[.ifMatch] { headers["If-Match"] = ifMatch }
            let mutation = try await queue.enqueue(
                QueuedRequest(
                    method: request.method.rawValue,
                    path: request.path,
                    query: request.query.map { QueuedRequest.QueryItem(name: $0.name, value: $0.value) },
                    headers: headers,
                    body: request.body
                ),
                scope: temporaryID?.rawValue ?? scope,
                creates: temporaryID.map { [$0] } ?? [],
                idempotencyKey: request.headerFields[.idempotencyKey] ?? UUID().uuidString.lowercased()
            )
            throw PyAirtableError.queuedOffline(
                mutation: mutation.id,
                temporaryID: temporaryID?.rawValue,
                operation: request.operation,
                cause: error
            )
        }
    }
}

/// The configuration asked to work offline.
struct OfflineByChoice: Error, CustomStringConvertible {
    var description: String { "working offline" }
}
