import Foundation
import PyAirtableModels
import Testing

@Suite("Webhook wire types")
struct WebhookModelTests {
    @Test("a delivery body decodes from the wire's snake_case keys and encodes back to them")
    func payloadKeys() throws {
        let json = """
            {"delivery_id": "dlv0123456789abcd", "webhook_id": "whk0123456789abcd",
             "event": {"seq": 7, "type": "record.created", "base_id": "app0123456789abcd",
                       "payload": {"id": "rec0123456789abcd"}, "ts": "2026-11-21T23:00:00.000Z"}}
            """
        let payload = try JSONCoding.decoder.decode(WebhookPayload.self, from: Data(json.utf8))
        #expect(payload.deliveryID.rawValue == "dlv0123456789abcd")
        #expect(payload.webhookID.rawValue == "whk0123456789abcd")
        #expect(payload.event.seq == 7 && payload.event.type == .recordCreated)
        let encoded = String(decoding: try JSONCoding.encoder.encode(payload), as: UTF8.self)
        #expect(encoded.contains(#""delivery_id":"dlv0123456789abcd""#))
        #expect(encoded.contains(#""webhook_id":"whk0123456789abcd""#))
    }

    @Test("webhook and delivery fields use the documented keys")
    func webhookKeys() throws {
        let hook = Webhook(
            id: WebhookID(unchecked: "whk0123456789abcd"),
            baseID: BaseID(unchecked: "app0123456789abcd"),
            url: "https://example.com/hook",
            events: [.recordCreated],
            enabled: false,
            disabledReason: "8 consecutive failed delivery attempts; last: HTTP 500",
            failureCount: 8,
            createdAt: Date(timeIntervalSince1970: 0)
        )
        let text = String(decoding: try JSONCoding.encoder.encode(hook), as: UTF8.self)
        #expect(text.contains(#""failure_count":8"#) && text.contains(#""disabled_reason":"#))
        #expect(!text.contains("secret"), "an absent secret is left out")
        let delivery = WebhookDelivery(
            id: DeliveryID(unchecked: "dlv0123456789abcd"),
            webhookID: hook.id,
            eventSeq: 3,
            eventType: .recordUpdated,
            status: .pending,
            attempts: 2,
            responseStatus: 503,
            error: "HTTP 503",
            createdAt: Date(timeIntervalSince1970: 0),
            nextAttemptAt: Date(timeIntervalSince1970: 60)
        )
        let deliveryText = String(decoding: try JSONCoding.encoder.encode(delivery), as: UTF8.self)
        #expect(deliveryText.contains(#""next_attempt_at":"1970-01-01T00:01:00.000Z""#))
        #expect(deliveryText.contains(#""event_type":"record.updated""#))
        let back = try JSONCoding.decoder.decode(WebhookDelivery.self, from: Data(deliveryText.utf8))
        #expect(back == delivery)
    }
}
