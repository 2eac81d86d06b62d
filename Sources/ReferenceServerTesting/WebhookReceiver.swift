import Foundation
import Hummingbird
import Logging
import PyAirtableClient
import PyAirtableModels
import ServiceLifecycle
import Synchronization

/// A webhook receiver on a loopback ephemeral port that records every delivery and answers with
/// the status you choose, for tests of webhooks.
///
/// ```swift
/// try await WebhookReceiver.withRunning { receiver in
///     let hook = try await client.webhooks.create(in: base, url: URL(string: receiver.url)!)
///     // … make changes …
///     let received = try await receiver.waitFor { $0.count >= 1 }
///     #expect(received[0].verifies(secret: hook.secret!))
/// }
/// ```
public final class WebhookReceiver: Sendable {
    /// One request the receiver got.
    public struct Delivery: Sendable {
        /// The request headers, names lower-cased.
        public var headers: [String: String]
        /// The raw body.
        public var body: Data

        /// `X-PyAirtable-Delivery`.
        public var deliveryID: String? { headers[WebhookPayload.deliveryHeader.lowercased()] }
        /// `X-PyAirtable-Event`.
        public var eventType: String? { headers[WebhookPayload.eventHeader.lowercased()] }
        /// `X-PyAirtable-Signature`.
        public var signature: String? { headers[WebhookPayload.signatureHeader.lowercased()] }
        /// The body decoded, or `nil` when it is not a delivery body.
        public var payload: WebhookPayload? { try? JSONCoding.decoder.decode(WebhookPayload.self, from: body) }

        /// Whether the signature verifies with `secret`.
        public func verifies(secret: String) -> Bool {
            Webhook.verifySignature(body: body, signatureHeader: signature ?? "", secret: secret)
        }
    }

    /// The error ``waitFor(timeout:_:)`` throws when the condition does not hold in time.
    public struct TimeoutError: Error, CustomStringConvertible {
        public var description: String
    }

    private let received = Mutex<[Delivery]>([])
    private let responder: Mutex<@Sendable (Int) async -> Int>
    private let boundPort = Mutex(0)

    private init(respond: @escaping @Sendable (Int) async -> Int) {
        responder = Mutex(respond)
    }

    /// The port it listens on.
    public var port: Int { boundPort.withLock { $0 } }
    /// The URL to register: `http://127.0.0.1:<port>/hook`.
    public var url: String { "http://127.0.0.1:\(port)/hook" }
    /// Every request so far, in arrival order.
    public var deliveries: [Delivery] { received.withLock { $0 } }

    /// Changes how it answers: `respond` gets the 0-based index of the request and returns the status;
    /// it may suspend, to hold an answer back (a slow or hanging receiver).
    public func respond(with respond: @escaping @Sendable (Int) async -> Int) {
        responder.withLock { $0 = respond }
    }

    /// Waits until `condition` holds for the requests received, and returns them.
    /// - Throws: ``TimeoutError`` after `timeout`.
    @discardableResult
    public func waitFor(
        timeout: Duration = .seconds(30),
        _ condition: @Sendable ([Delivery]) -> Bool
    ) async throws -> [Delivery] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = deliveries
            if condition(current) { return current }
            guard ContinuousClock.now < deadline else {
                throw TimeoutError(
                    description: "the condition did not hold within \(timeout); got \(current.count) requests"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private func record(_ delivery: Delivery) async -> Int {
        let index = received.withLock { list in
            list.append(delivery)
            return list.count - 1
        }
        let respond = responder.withLock { $0 }
        return await respond(index)
    }

    /// Starts a receiver, runs `body`, then stops it.
    /// - Parameters:
    ///   - respond: The status for the request at a 0-based index (200 for all by default).
    ///   - body: The test, given the running receiver.
    public static func withRunning<T: Sendable>(
        respond: @escaping @Sendable (Int) async -> Int = { _ in 200 },
        _ body: @Sendable (WebhookReceiver) async throws -> T
    ) async throws -> T {
        let receiver = WebhookReceiver(respond: respond)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 16 * 1024 * 1024)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let status = await receiver.record(Delivery(headers: headers, body: Data(buffer.readableBytesView)))
            return Response(status: .init(code: status))
        }
        return try await LoopbackServer.withRunning(router, label: "pyat.webhook-receiver") { port in
            receiver.boundPort.withLock { $0 = port }
            return try await body(receiver)
        }
    }
}
