import Foundation
import PyAirtableModels
import PyAirtableTesting
import Testing

@testable import ReferenceServer

/// How fast events reach a loopback receiver. Off unless `PYAT_WEBHOOK_BENCH=1`, as it measures the
/// machine rather than checking behaviour; it prints one line per run.
@Suite(
    "Webhook throughput",
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["PYAT_WEBHOOK_BENCH"] == "1")
)
struct WebhookThroughputTests {
    @Test("1000 record events to 1 and to 4 webhooks", arguments: [1, 4])
    func throughput(hooks: Int) async throws {
        let events = 1000
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
