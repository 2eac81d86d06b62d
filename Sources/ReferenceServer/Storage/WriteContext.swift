import Foundation
import PyAirtableModels

/// What every mutation carries: who acts, when, and the idempotency claim when the request had one.
public struct WriteContext: Sendable {
    public var actor: UserID?
    public var now: Date
    var idempotency: IdempotencyClaim?
    /// Names the logical write the events it appends belong to (Airtable's webhooks make one
    /// payload of each): random, so it is unique across restarts without coordination.
    var transaction: Int64 = .random(in: 1...Int64.max)
    /// Whether this is mirror mode's own write to a mirrored base (every other write to one is refused).
    var mirrorWrite = false

    public init(actor: UserID?, now: Date) {
        self.actor = actor
        self.now = now
    }

    init(actor: UserID?, now: Date, idempotency: IdempotencyClaim?) {
        self.actor = actor
        self.now = now
        self.idempotency = idempotency
    }

    func requireActor() throws -> UserID {
        guard let actor else { throw StorageError.unauthenticated }
        return actor
    }
}

/// An `Idempotency-Key` bound to its caller and to a hash of the request it came with.
struct IdempotencyClaim: Sendable, Hashable {
    var principal: String
    var key: String
    var requestHash: String
}

/// The answer a mutation produced, as stored for idempotent replay: status, exact body bytes, ETag.
public struct StoredResponse: Sendable, Hashable {
    public var status: Int
    public var body: Data
    public var eTag: String?
    /// Whether this answer is a replay of an earlier request with the same key.
    public var replayed: Bool
}

/// The outcome of a mutation: the value when it ran now, and the answer to send.
public struct WriteResult<Value: Sendable>: Sendable {
    /// The new state; `nil` when the answer is a replay of an earlier request.
    public var value: Value?
    public var response: StoredResponse
}
