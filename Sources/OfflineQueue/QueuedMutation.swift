import Foundation
import PyAirtableModels

/// A mutation waiting in the offline queue: the request, the key that makes its replay exactly-once,
/// and where it stands.
///
/// Mutations are replayed in ``id`` order within a ``scope``; a mutation's ``idempotencyKey`` is fixed
/// when it is enqueued and sent on every attempt, so the server applies it once however many times it
/// is sent.
public struct QueuedMutation: Sendable, Hashable, Codable, Identifiable {
    /// Where a mutation stands. A mutation that succeeded is no longer in the queue.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        /// Waiting to be sent.
        case pending
        /// Claimed by a replay driver, which may be sending it now.
        case inflight
        /// Failed in a way retrying cannot fix; kept, with its error, until retried or dropped.
        case failed
    }

    /// The replay driver holding an in-flight mutation.
    public struct Claim: Sendable, Hashable, Codable {
        /// The queue instance that claimed it.
        public var owner: String
        /// The claiming process.
        public var processID: Int32
        /// The machine the claiming process runs on.
        public var host: String
        /// When it was claimed.
        public var claimedAt: Date
        /// Until when the claim holds even if its process seems stuck; after that anyone may take it.
        public var leaseExpiresAt: Date

        /// Makes a claim.
        public init(owner: String, processID: Int32, host: String, claimedAt: Date, leaseExpiresAt: Date) {
            self.owner = owner
            self.processID = processID
            self.host = host
            self.claimedAt = claimedAt
            self.leaseExpiresAt = leaseExpiresAt
        }

        enum CodingKeys: String, CodingKey {
            case owner
            case processID = "process_id"
            case host
            case claimedAt = "claimed_at"
            case leaseExpiresAt = "lease_expires_at"
        }
    }

    /// Why the last attempt failed.
    public struct Failure: Sendable, Hashable, Codable {
        /// The HTTP status, when the server answered.
        public var status: Int?
        /// The server's error body, when it sent one.
        public var error: ErrorResponse?
        /// A human-readable description: the server's message, or the transport error.
        public var message: String
        /// When the failure happened.
        public var occurredAt: Date

        /// Makes a failure.
        /// - Parameters:
        ///   - status: The HTTP status, when the server answered.
        ///   - error: The server's error body, when it sent one.
        ///   - message: What went wrong; by default the error body's message.
        ///   - occurredAt: When it happened.
        public init(status: Int? = nil, error: ErrorResponse? = nil, message: String? = nil, occurredAt: Date) {
            self.status = status
            self.error = error
            self.message = message ?? error?.error.message ?? status.map { "HTTP \($0)" } ?? "failed"
            self.occurredAt = occurredAt
        }

        enum CodingKeys: String, CodingKey {
            case status, error, message
            case occurredAt = "occurred_at"
        }
    }

    /// The position in the queue: strictly increasing, never reused.
    public var id: Int64
    /// When the mutation was enqueued.
    public var createdAt: Date
    /// The `Idempotency-Key` sent on every attempt.
    public var idempotencyKey: String
    /// The request, with temporary ids already replaced by server ids as they became known.
    public var request: QueuedRequest
    /// The record (or temporary id) the mutation concerns: mutations with the same scope replay in
    /// order; `nil` means it depends on nothing else in the queue.
    public var scope: String?
    /// Mutations with the same batch key may be sent together in one batch request.
    public var batchKey: String?
    /// The temporary ids of the records this mutation creates.
    public var createsTemporaryIDs: [TemporaryID]
    /// Where the mutation stands.
    public var state: State
    /// How many attempts failed or were interrupted.
    public var attempts: Int
    /// Why the last attempt failed.
    public var lastFailure: Failure?
    /// Who holds it, while ``state`` is ``State/inflight``.
    public var claim: Claim?
    /// The `Idempotency-Key` of the batch request this mutation was claimed into, with the other
    /// mutations carrying the same key; `nil` when it is sent on its own.
    ///
    /// Once set, the mutation is only ever sent in that batch, with that key (the server may have
    /// applied the batch before an answer was lost), until the server refuses the batch as a whole:
    /// then ``OfflineQueue/dissolveBatch(_:)`` clears it and each mutation goes on its own.
    public var batchIdempotencyKey: String?

    /// Makes a mutation value (as read from the queue).
    public init(
        id: Int64,
        createdAt: Date,
        idempotencyKey: String,
        request: QueuedRequest,
        scope: String? = nil,
        batchKey: String? = nil,
        createsTemporaryIDs: [TemporaryID] = [],
        state: State = .pending,
        attempts: Int = 0,
        lastFailure: Failure? = nil,
        claim: Claim? = nil,
        batchIdempotencyKey: String? = nil
    ) {
        self.id = id
        self.createdAt = createdAt
        self.idempotencyKey = idempotencyKey
        self.request = request
        self.scope = scope
        self.batchKey = batchKey
        self.createsTemporaryIDs = createsTemporaryIDs
        self.state = state
        self.attempts = attempts
        self.lastFailure = lastFailure
        self.claim = claim
        self.batchIdempotencyKey = batchIdempotencyKey
    }

    enum CodingKeys: String, CodingKey {
        case id
        case createdAt = "created_at"
        case idempotencyKey = "idempotency_key"
        case request, scope
        case batchKey = "batch_key"
        case createsTemporaryIDs = "creates_temporary_ids"
        case state, attempts
        case lastFailure = "last_failure"
        case claim
        case batchIdempotencyKey = "batch_idempotency_key"
    }
}
