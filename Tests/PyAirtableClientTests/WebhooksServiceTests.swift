import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import Testing

/// `client.webhooks` and `Webhook.verifySignature` against the real server and a loopback receiver.
@Suite("Webhooks service", .timeLimit(.minutes(15)))
struct WebhooksServiceTests {
    /// The demo's base and its first table.
    static func demoTable(_ client: PyAirtableClient, _ demo: DemoCredentials) async throws -> (BaseID, TableID) {
        let workspace = try #require(demo.workspaceID)
        let base = try #require(try await client.bases.list(in: workspace).first)
        let table = try #require(try await client.tables.list(in: base.id, policy: .networkOnly).first)
        return (base.id, table.id)
    }

    @Test("verifySignature accepts the server's signature and nothing else")
    func verifySignature() {
        let body = Data(#"{"delivery_id":"dlv00000000000000"}"#.utf8)
        let secret = String(repeating: "ab", count: 32)
        let header = Webhook.signature(body: body, secret: secret)
        #expect(header.hasPrefix("sha256=") && header.count == 7 + 64)
        #expect(Webhook.verifySignature(body: body, signatureHeader: header, secret: secret))
        #expect(
            Webhook.verifySignature(
                body: Array(body),
                signatureHeader: header.uppercased().replacingOccurrences(of: "SHA256=", with: "sha256="),
                secret: secret
            )
        )
        #expect(!Webhook.verifySignature(body: body, signatureHeader: header, secret: secret + "x"))
        #expect(!Webhook.verifySignature(body: body + Data(" ".utf8), signatureHeader: header, secret: secret))
        #expect(!Webhook.verifySignature(body: body, signatureHeader: String(header.dropFirst(7)), secret: secret))
        #expect(!Webhook.verifySignature(body: body, signatureHeader: "sha256=zz", secret: secret))
        #expect(!Webhook.verifySignature(body: body, signatureHeader: String(header.dropLast(2)), secret: secret))
    }

    @Test("create, list, get, deliveries, disable and delete through the SDK; deliveries verify with the secret")
    func serviceRoundTrip() async throws {
        try await WebhookReceiver.withRunning { receiver in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                try await Fixtures.withClient(server, token: demo.token) { client in
                    let (base, table) = try await Self.demoTable(client, demo)
                    let hook = try await client.webhooks.create(
                        in: base,
                        url: URL(string: receiver.url)!,
                        events: [.recordCreated],
                        table: table
                    )
                    let secret = try #require(hook.secret)
                    #expect(hook.events == [.recordCreated] && hook.tableID == table && hook.enabled)

                    let record = try await client.records.create(in: table, fields: ["Name": "hooked"]).get()
                    let received = try await receiver.waitFor { $0.count >= 1 }
                    let delivery = try #require(received.first)
                    #expect(
                        Webhook.verifySignature(
                            body: delivery.body,
                            signatureHeader: delivery.signature ?? "",
                            secret: secret
                        )
                    )
                    #expect(
                        !Webhook.verifySignature(
                            body: delivery.body,
                            signatureHeader: delivery.signature ?? "",
                            secret: "wrong"
                        )
                    )
                    let payload = try JSONCoding.decoder.decode(WebhookPayload.self, from: delivery.body)
                    #expect(payload.webhookID == hook.id && payload.event.recordID == record.id)
                    #expect(payload.event.type == .recordCreated && delivery.deliveryID == payload.deliveryID.rawValue)

                    let listed = try await client.webhooks.list(in: base)
                    #expect(listed.map(\.id) == [hook.id] && listed.first?.secret == nil)
                    var log = try await client.webhooks.deliveries(of: hook.id)
                    let deadline = ContinuousClock.now + .seconds(30)
                    while log.data.first?.status != .succeeded, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                        log = try await client.webhooks.deliveries(of: hook.id)
                    }
                    #expect(log.data.map(\.id) == [payload.deliveryID])
                    #expect(log.data.first?.status == .succeeded && log.data.first?.attempts == 1)
                    #expect(try await client.webhooks.deliveries(of: hook.id, status: .pending).data.isEmpty)

                    let disabled = try await client.webhooks.disable(hook.id)
                    #expect(!disabled.enabled && disabled.disabledReason != nil)
                    #expect(try await client.webhooks.get(hook.id).enabled == false)
                    try await client.webhooks.delete(hook.id)
                    #expect(try await client.webhooks.list(in: base).isEmpty)
                    await #expect(throws: PyAirtableError.self) { try await client.webhooks.get(hook.id) }
                }
            }
        }
    }

    @Test("a server restarted while deliveries were failing delivers each event once per delivery id, in order")
    func restartMidDelivery() async throws {
        let down: @Sendable (Int) -> Int = { _ in 503 }
        try await WebhookReceiver.withRunning(respond: down) { receiver in
            let server = RestartableServer()
            do {
                let services = try await server.start()
                let demo = try await DemoData.seed(services: services)
                let configuration = PyAirtableClient.Configuration(
                    serverURL: URL(string: server.url)!,
                    credentials: .personalAccessToken(demo.token)
                )
                let hook = try await withPyAirtableClient(configuration: configuration) { client in
                    let (base, table) = try await Self.demoTable(client, demo)
                    let hook = try await client.webhooks.create(
                        in: base,
                        url: URL(string: receiver.url)!,
                        events: [.recordCreated]
                    )
                    for index in 1...4 {
                        _ = try await client.records.create(in: table, fields: ["Name": .string("restart \(index)")])
                    }
                    return hook
                }
                try await receiver.waitFor { $0.count >= 2 }
                await server.stop()
                let failedAttempts = receiver.deliveries.count

                receiver.respond { _ in 200 }
                try await server.start()
                let received = try await receiver.waitFor { list in
                    Set(list.dropFirst(failedAttempts).compactMap(\.deliveryID)).count >= 4
                }
                var idBySeq: [Int64: DeliveryID] = [:]
                for delivery in received {
                    let payload = try #require(delivery.payload)
                    #expect(idBySeq[payload.event.seq].map { $0 == payload.deliveryID } ?? true)
                    idBySeq[payload.event.seq] = payload.deliveryID
                    #expect(delivery.verifies(secret: hook.secret ?? ""))
                }
                #expect(idBySeq.count == 4)
                let delivered = received.dropFirst(failedAttempts).compactMap { $0.payload?.event.seq }
                #expect(delivered == delivered.sorted(), "deliveries of one webhook arrive in event order")
                await server.remove()
            } catch {
                await server.remove()
                throw error
            }
        }
    }
}
