import Foundation
import PyAirtableModels

/// Webhooks, their delivery log, and what the delivery worker needs: matching events turned into
/// pending deliveries, the deliveries due now, and the outcome of each attempt.
public protocol WebhookRepository: Sendable {
    /// The webhooks of a base (creator or higher); secrets are never included.
    func webhooks(base: BaseID, user: UserID) async throws -> [Webhook]
    /// One webhook (creator or higher in its workspace); its secret is never included.
    func webhook(id: WebhookID, user: UserID) async throws -> Webhook
    /// Registers a webhook (creator or higher); the answer alone carries `secret`.
    func createWebhook(
        base: BaseID,
        _ request: CreateWebhookRequest,
        secret: String,
        maximumPerBase: Int,
        context: WriteContext
    ) async throws -> WriteResult<Webhook>
    /// Turns a webhook off or back on (creator or higher). Turning on a webhook whose creator no
    /// longer has the creator role makes the caller responsible for it.
    func updateWebhook(
        id: WebhookID,
        _ request: UpdateWebhookRequest,
        context: WriteContext
    ) async throws -> WriteResult<Webhook>
    /// Deletes a webhook and its delivery log (creator or higher).
    func deleteWebhook(id: WebhookID, context: WriteContext) async throws -> WriteResult<EmptyBody>
    /// A page of a webhook's delivery log (creator or higher), newest event first, before the event
    /// seq `before`.
    func deliveries(
        webhook: WebhookID,
        user: UserID,
        status: WebhookDelivery.Status?,
        before: Int64?,
        limit: Int
    ) async throws -> Page<WebhookDelivery>

    /// Calls `observer` after every committed write transaction.
    func observeCommits(_ observer: @escaping @Sendable () -> Void)
    /// Turns the events after each enabled webhook's cursor into pending deliveries and advances the
    /// cursor, in one transaction. Looks at up to `limit` events per webhook.
    /// - Returns: Whether a webhook has more events to look at.
    func enqueueWebhookDeliveries(now: Date, limit: Int) async throws -> Bool
    /// In one read: whether an enabled webhook has events after its cursor, and each enabled
    /// webhook's oldest pending delivery (deliveries of one webhook go out in event order) — those due
    /// at `now`, and when the earliest of the others is due.
    func webhookWork(now: Date) async throws -> WebhookWork
    /// One enabled webhook's oldest pending delivery, when it is due at `now`.
    func nextWebhookDelivery(webhook: WebhookID, now: Date) async throws -> PendingWebhookDelivery?
    /// Records one attempt: success ends the delivery; failure schedules the next attempt at
    /// `retryAt`, or disables the webhook when `policy` says it failed too often or too long.
    func recordWebhookAttempt(
        _ attempt: WebhookAttempt,
        retryAt: Date,
        policy: WebhookConfiguration
    ) async throws
}

/// What the delivery worker has to do, as one read of the store sees it.
public struct WebhookWork: Sendable, Hashable {
    /// Whether an enabled webhook has events after its cursor to hand over.
    public var backlog: Bool
    /// The deliveries due now, one per webhook, oldest event first.
    public var due: [PendingWebhookDelivery]
    /// When the earliest delivery that is not due yet is.
    public var nextDue: Date?
}

/// A delivery due for an attempt, with what it takes to send it.
public struct PendingWebhookDelivery: Sendable, Hashable {
    public var id: DeliveryID
    public var webhookID: WebhookID
    public var eventSeq: Int64
    public var eventType: EventType
    /// The exact body to POST (and sign).
    public var body: Data
    public var url: String
    /// The secret deliveries are signed with; `nil` when the stored one cannot be opened (it was
    /// sealed with another storage secret), and then the attempt fails without sending.
    public var secret: String?
    /// Attempts made before this one.
    public var attempts: Int
}

/// The outcome of one delivery attempt.
public struct WebhookAttempt: Sendable, Hashable {
    public var delivery: DeliveryID
    public var webhook: WebhookID
    /// When the attempt ended.
    public var at: Date
    /// Whether the receiver answered 2xx.
    public var succeeded: Bool
    /// The receiver's HTTP status, when it answered.
    public var responseStatus: Int?
    /// Why the attempt failed, such as `HTTP 500` or `timed out after 10 s`.
    public var error: String?
}
