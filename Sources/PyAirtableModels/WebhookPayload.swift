import Foundation

/// The JSON body of one webhook delivery: `{"delivery_id", "webhook_id", "event": {…}}`.
///
/// The same delivery may arrive more than once (a retry after a timeout, a server restart during
/// an attempt): receivers dedupe by `deliveryID`, which is also in the `X-PyAirtable-Delivery` header.
///
/// ```swift
/// guard Webhook.verifySignature(body: body, signatureHeader: signature, secret: secret) else { return 401 }
/// let delivery = try JSONCoding.decoder.decode(WebhookPayload.self, from: body)
/// ```
public struct WebhookPayload: Codable, Sendable, Hashable {
    public var deliveryID: DeliveryID
    public var webhookID: WebhookID
    /// The event as `GET /events/log` shows it.
    public var event: Event

    public init(deliveryID: DeliveryID, webhookID: WebhookID, event: Event) {
        self.deliveryID = deliveryID
        self.webhookID = webhookID
        self.event = event
    }

    /// The header carrying `sha256=<hex HMAC-SHA256(secret, raw body)>`.
    public static let signatureHeader = "X-PyAirtable-Signature"
    /// The header carrying the delivery id (the same on every attempt of a delivery).
    public static let deliveryHeader = "X-PyAirtable-Delivery"
    /// The header carrying the event type, such as `record.created`.
    public static let eventHeader = "X-PyAirtable-Event"

    enum CodingKeys: String, CodingKey {
        case deliveryID = "delivery_id"
        case webhookID = "webhook_id"
        case event
    }
}

/// `PATCH /webhooks/{id}`: turns a webhook off, or back on (which clears its failure count and
/// retries the deliveries it gave up on).
public struct UpdateWebhookRequest: Codable, Sendable, Hashable {
    public var enabled: Bool?

    public init(enabled: Bool? = nil) {
        self.enabled = enabled
    }
}
