import Foundation
import PyAirtableModels
import ReferenceServerTesting
import TestSupport
import Testing

@testable import ReferenceServer

/// A burst of events to one and to several webhooks: every event reaches every webhook once. It
/// prints the delivery rate it saw (a figure of the machine, not a check).
@Suite("Webhook fan-out", .serialized, .heavy, .timeLimit(.minutes(15)))
struct WebhookThroughputTests {
    @Test("300 record events to 1 and to 4 webhooks, each delivered once per webhook", arguments: [1, 4])
    func throughput(hooks: Int) async throws {
        let events = 300
        try await WebhookReceiver.withRunning { receiver in
            try await WebhookTests.withServer { api, _ in
                let (owner, _) = try await api.register("Bench")
                let (_, base, table) = try await owner.scaffold()
                for _ in 0..<hooks {
                    _ = try await WebhookTests.createHook(
                        owner,
                        base: base.id,
                        url: receiver.url,
                        events: [.recordCreated]
                    )
                }
                let start = ContinuousClock.now
                _ = try await owner.seed(table.id, (0..<events).map { ["Name": .string("row \($0)")] })
                let written = ContinuousClock.now - start
                try await receiver.waitFor(timeout: .seconds(300)) { $0.count >= events * hooks }
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print(
                    "webhook throughput: \(events) events x \(hooks) webhook(s) delivered in \(elapsed)"
                        + " (writes took \(written)); \(Int(Double(events * hooks) / seconds)) deliveries/s"
                )
                #expect(receiver.deliveries.count == events * hooks, "no delivery is sent twice")
                #expect(Set(receiver.deliveries.compactMap(\.deliveryID)).count == events * hooks)
            }
        }
    }
}
