import Foundation

/// A mutation to enqueue with ``OfflineQueue/enqueue(contentsOf:)``.
public struct QueueItem: Sendable, Hashable {
    /// The request to replay.
    public var request: QueuedRequest
    /// The record (id or temporary id) the mutation concerns; same-scope mutations replay in order.
    public var scope: String?
    /// Mutations with equal batch keys may be claimed together, to go in one batch request.
    public var batchKey: String?
    /// The temporary ids of the records this mutation creates.
    public var creates: [TemporaryID]
    /// The key to send on every attempt.
    public var idempotencyKey: String

    /// Makes an item; see ``OfflineQueue/enqueue(_:scope:batchKey:creates:idempotencyKey:)`` for each
    /// argument.
    public init(
        request: QueuedRequest,
        scope: String? = nil,
        batchKey: String? = nil,
        creates: [TemporaryID] = [],
        idempotencyKey: String = UUID().uuidString
    ) {
        self.request = request
        self.scope = scope
        self.batchKey = batchKey
        self.creates = creates
        self.idempotencyKey = idempotencyKey
    }
}
