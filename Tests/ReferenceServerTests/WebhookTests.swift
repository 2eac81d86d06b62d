import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PyAirtableModels
import ReferenceServerTesting
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// Webhooks end to end: the real server and its delivery worker over a real SQLite file, POSTing to
/// a receiver on loopback.
@Suite("Webhooks", .timeLimit(.minutes(15)))
struct WebhookTests {
    /// A server on `directory` with the delivery worker running (unless `worker` is false), fast
    /// retries, and loopback targets allowed unless `webhooks` says otherwise.
    static func withServer<T: Sendable>(
        directory: String,
        worker: Bool = true,
        now: @escaping @Sendable () -> Date = { Date() },
        webhooks: WebhookConfiguration = WebhookConfiguration(
            allowPrivateTargets: true,
            attemptTimeout: .seconds(10),
            initialBackoff: .milliseconds(10),
            maximumBackoff: .milliseconds(100),
            maximumConsecutiveFailures: 4
        ),
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        let configuration = ServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            dataDirectory: directory,
            auth: .init(bcryptCost: 4, throttle: .forTests),
            durableCommits: false,
            now: now,
            webhooks: webhooks
        )
        let services = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
        let application = Application(
            router: buildRouter(services: services),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: Harness.logger
        )
        return try await application.test(.live) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                if worker {
                    group.addTask { try await WebhookDeliveryService(services: services).run() }
                }
                do {
                    let result = try await body(API(client: client), services)
                    group.cancelAll()
                    return result
                } catch {
                    group.cancelAll()
                    throw error
                }
            }
        }
    }

    static func withServer<T: Sendable>(
        webhooks: WebhookConfiguration? = nil,
        _ body: @escaping @Sendable (API, ServerServices) async throws -> T
    ) async throws -> T {
        let directory = try TemporaryDirectory()
        if let webhooks {
            return try await withServer(directory: directory.path, webhooks: webhooks, body)
        }
        return try await withServer(directory: directory.path, body)
    }

    /// Waits until `condition` holds for a webhook's delivery log.
    @discardableResult
    static func waitForLog(
        _ api: API,
        _ webhook: WebhookID,
        timeout: Duration = .seconds(30),
        _ condition: @Sendable ([WebhookDelivery]) -> Bool
    ) async throws -> [WebhookDelivery] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let log = try await api.call(
                .get,
                "webhooks/\(webhook)/deliveries",
                as: Page<WebhookDelivery>.self
            ).data
            if condition(log) { return log }
            guard ContinuousClock.now < deadline else {
                Issue.record("the delivery log did not reach the expected state: \(log)")
                return log
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func createHook(
        _ api: API,
        base: BaseID,
        url: String,
        events: [EventType]? = nil,
        table: TableID? = nil
    ) async throws -> Webhook {
        try await api.call(
            .post,
            "bases/\(base)/webhooks",
            json: CreateWebhookRequest(url: url, events: events, tableID: table),
            expect: .created,
            as: Webhook.self
        )
    }

    @Test("deliveries are signed with the secret, carry their headers, and follow the event and table filters")
    func signedAndFiltered() async throws {
        try await WebhookReceiver.withRunning { receiver in
            try await Self.withServer { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, tasks) = try await owner.scaffold()
                let notes = try await owner.createTable(in: base.id, "Notes")
                let filtered = try await Self.createHook(
                    owner,
                    base: base.id,
                    url: receiver.url + "?hook=filtered",
                    events: [.recordCreated],
                    table: tasks.id
                )
                let everything = try await Self.createHook(owner, base: base.id, url: receiver.url + "?hook=all")
                let secret = try #require(filtered.secret)
                #expect(secret.count == 64 && secret.allSatisfy(\.isHexDigit))
                #expect(everything.secret != nil && everything.secret != secret)

                let first = try await owner.createRecord(in: tasks.id, ["Name": "first"])
                _ = try await owner.createRecord(in: notes.id, ["Name": "elsewhere"])
                _ = try await owner.call(
                    .patch,
                    "records/\(first.id)",
                    json: RecordFieldsRequest(fields: ["Name": "renamed"]),
                    as: PyAirtableModels.Record.self
                )

                // The catch-all hook sees the two creations and the update; once it has, the filtered
                // hook has had every chance to receive more than its one event.
                let received = try await receiver.waitFor { list in
                    list.filter { $0.payload?.webhookID == everything.id }.count >= 3
                        && list.contains { $0.payload?.webhookID == filtered.id }
                }
                let toFiltered = received.filter { $0.payload?.webhookID == filtered.id }
                let toEverything = received.filter { $0.payload?.webhookID == everything.id }
                #expect(toFiltered.count == 1)
                #expect(toFiltered.first?.payload?.event.type == .recordCreated)
                #expect(toFiltered.first?.payload?.event.recordID == first.id)
                #expect(
                    toEverything.map { $0.payload?.event.type } == [.recordCreated, .recordCreated, .recordUpdated]
                )
                let seqs = toEverything.compactMap { $0.payload?.event.seq }
                #expect(seqs == seqs.sorted() && Set(seqs).count == 3)

                for delivery in toFiltered {
                    #expect(delivery.verifies(secret: secret))
                    #expect(!delivery.verifies(secret: try #require(everything.secret)))
                    #expect(!delivery.verifies(secret: String(repeating: "0", count: 64)))
                    #expect(delivery.signature == WebhookSignature.header(body: delivery.body, secret: secret))
                    #expect(delivery.deliveryID == delivery.payload?.deliveryID.rawValue)
                    #expect(delivery.eventType == "record.created")
                    #expect(delivery.headers["content-type"] == "application/json")
                }
                for delivery in toEverything {
                    #expect(delivery.verifies(secret: try #require(everything.secret)))
                }

                // The secret is shown once: neither the list nor a GET has it.
                let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
                #expect(Set(listed.map(\.id)) == [filtered.id, everything.id])
                #expect(listed.allSatisfy { $0.secret == nil })
                let fetched = try await owner.call(.get, "webhooks/\(filtered.id)", as: Webhook.self)
                #expect(fetched.secret == nil && fetched.enabled && fetched.events == [.recordCreated])
                #expect(fetched.tableID == tasks.id)

                let log = try await Self.waitForLog(owner, filtered.id) { $0.first?.status == .succeeded }
                #expect(log.count == 1)
                #expect(log.first?.attempts == 1 && log.first?.responseStatus == 200)
                #expect(log.first?.eventType == .recordCreated && log.first?.deliveredAt != nil)
            }
        }
    }

    @Test("a receiver that answers 500 twice gets the same delivery three times; the log says 3 attempts, succeeded")
    func retriesWithTheSameDeliveryID() async throws {
        let failTwice: @Sendable (Int) -> Int = { $0 < 2 ? 500 : 200 }
        try await WebhookReceiver.withRunning(respond: failTwice) { receiver in
            try await Self.withServer { api, services in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url)
                _ = try await owner.createRecord(in: table.id, ["Name": "retry me"])

                let received = try await receiver.waitFor { $0.count >= 3 }
                #expect(Set(received.compactMap(\.deliveryID)).count == 1)
                #expect(received.allSatisfy { $0.verifies(secret: hook.secret ?? "") })
                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .succeeded }
                #expect(log.count == 1)
                #expect(log.first?.attempts == 3)
                #expect(log.first?.responseStatus == 200)
                #expect(log.first?.id.rawValue == received.first?.deliveryID)
                let after = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
                #expect(after.failureCount == 0 && after.enabled)
                let metrics = services.metrics.exposition()
                #expect(metrics.contains(#"pyat_webhook_attempts_total{outcome="failed"} 2"#), "\(metrics)")
                #expect(metrics.contains(#"pyat_webhook_attempts_total{outcome="succeeded"} 1"#))
            }
        }
    }

    @Test(
        "a webhook that keeps failing is disabled with the reason in GET and list; enabling it delivers what was held"
    )
    func disabledAfterRepeatedFailures() async throws {
        let alwaysFail: @Sendable (Int) -> Int = { _ in 500 }
        try await WebhookReceiver.withRunning(respond: alwaysFail) { receiver in
            try await Self.withServer { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                _ = try await owner.createRecord(in: table.id, ["Name": "doomed"])

                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .failed }
                #expect(log.first?.attempts == 4)
                #expect(log.first?.error?.hasPrefix("HTTP 500") == true)
                let fetched = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
                #expect(!fetched.enabled)
                #expect(fetched.disabledReason?.contains("4 consecutive failed delivery attempts") == true)
                #expect(fetched.disabledReason?.contains("HTTP 500") == true)
                #expect(fetched.failureCount == 4)
                let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
                #expect(listed.first?.enabled == false && listed.first?.disabledReason == fetched.disabledReason)
                #expect(receiver.deliveries.count == 4)

                // While disabled, events are kept for it; once enabled, the failed delivery goes first.
                _ = try await owner.createRecord(in: table.id, ["Name": "while off"])
                receiver.respond { _ in 204 }
                let enabled = try await owner.call(
                    .patch,
                    "webhooks/\(hook.id)",
                    json: UpdateWebhookRequest(enabled: true),
                    as: Webhook.self
                )
                #expect(enabled.enabled && enabled.disabledReason == nil && enabled.failureCount == 0)
                let after = try await Self.waitForLog(owner, hook.id) { log in
                    log.count == 2 && log.allSatisfy { $0.status == .succeeded }
                }
                #expect(after.map(\.eventSeq) == after.map(\.eventSeq).sorted(by: >))
                let succeededIDs = receiver.deliveries.suffix(2).compactMap(\.deliveryID)
                #expect(succeededIDs == after.reversed().map(\.id.rawValue))
            }
        }
    }

    @Test("deliveries survive restarts: events made while the worker was off or failing are each delivered, in order")
    func resumesAfterRestart() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        let down: @Sendable (Int) -> Int = { _ in 503 }
        try await WebhookReceiver.withRunning(respond: down) { receiver in
            // 1. No worker: the webhook and three events are only in the database.
            let (token, hook, table) = try await Self.withServer(directory: path, worker: false) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                for index in 1...3 {
                    _ = try await owner.createRecord(in: table.id, ["Name": .string("offline \(index)")])
                }
                return (try #require(owner.token), hook, table)
            }
            #expect(receiver.deliveries.isEmpty)

            // 2. The worker runs but the receiver is down (503): attempts are made, none lands, and
            //    the server stops in the middle of retrying. Retries come every 10 ms: a generous failure
            //    limit keeps a slow shutdown (a loaded machine) from disabling the webhook meanwhile.
            let patient = WebhookConfiguration(
                allowPrivateTargets: true,
                attemptTimeout: .seconds(10),
                initialBackoff: .milliseconds(10),
                maximumBackoff: .milliseconds(100),
                maximumConsecutiveFailures: 1000
            )
            try await Self.withServer(directory: path, webhooks: patient) { api, _ in
                let owner = api.authorized(token)
                for index in 4...5 {
                    _ = try await owner.createRecord(in: table.id, ["Name": .string("failing \(index)")])
                }
                try await receiver.waitFor { $0.count >= 2 }
            }

            // 3. A new server process and a healthy receiver: everything is delivered.
            receiver.respond { _ in 200 }
            let attemptsBefore = receiver.deliveries.count
            try await Self.withServer(directory: path) { api, _ in
                let owner = api.authorized(token)
                let log = try await Self.waitForLog(owner, hook.id) { log in
                    log.count == 5 && log.allSatisfy { $0.status == .succeeded }
                }
                #expect(log.count == 5)
            }
            let all = receiver.deliveries
            #expect(all.count > attemptsBefore)
            var idBySeq: [Int64: String] = [:]
            for delivery in all {
                let payload = try #require(delivery.payload)
                if let known = idBySeq[payload.event.seq] {
                    #expect(known == payload.deliveryID.rawValue, "one delivery id per event")
                }
                idBySeq[payload.event.seq] = payload.deliveryID.rawValue
                #expect(delivery.verifies(secret: hook.secret ?? ""))
            }
            #expect(idBySeq.count == 5)
            #expect(Set(idBySeq.values).count == 5)
            // Successful deliveries arrive in event order (the first 200s are the tail of the list).
            let successes = all.suffix(from: attemptsBefore).compactMap { $0.payload?.event.seq }
            var firstSeen: [Int64] = []
            for seq in successes where !firstSeen.contains(seq) { firstSeen.append(seq) }
            #expect(firstSeen == firstSeen.sorted())
            #expect(firstSeen.count == 5)
        }
    }

    @Test("an attempt in flight when the server stops is made again after the restart, with the same delivery id")
    func inFlightAttemptIsRepeatedAfterRestart() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        let (gate, release) = AsyncStream.makeStream(of: Void.self)
        // The first request hangs until released: the server stops while it is in flight.
        let hangFirst: @Sendable (Int) async -> Int = { index in
            if index == 0 { for await _ in gate {} }
            return 200
        }
        try await WebhookReceiver.withRunning(respond: hangFirst) { receiver in
            let (token, hook) = try await Self.withServer(directory: path) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                _ = try await owner.createRecord(in: table.id, ["Name": "in flight"])
                try await receiver.waitFor { $0.count == 1 }
                return (try #require(owner.token), hook)
            }
            release.finish()
            try await Self.withServer(directory: path) { api, _ in
                let owner = api.authorized(token)
                let received = try await receiver.waitFor { $0.count >= 2 }
                #expect(received.count == 2)
                #expect(received[0].deliveryID != nil && received[0].deliveryID == received[1].deliveryID)
                #expect(received[1].verifies(secret: hook.secret ?? ""))
                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .succeeded }
                #expect(log.count == 1)
                #expect(log.first?.attempts == 1, "the attempt cut short by the stop is not counted")
            }
        }
    }

    @Test("an attempt that takes longer than the timeout fails, and the reason says so")
    func attemptTimeout() async throws {
        let slow: @Sendable (Int) async -> Int = { _ in
            try? await Task.sleep(for: .milliseconds(1500))
            return 200
        }
        let webhooks = WebhookConfiguration(
            allowPrivateTargets: true,
            attemptTimeout: .milliseconds(200),
            maximumConsecutiveFailures: 1
        )
        try await WebhookReceiver.withRunning(respond: slow) { receiver in
            try await Self.withServer(webhooks: webhooks) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                _ = try await owner.createRecord(in: table.id, ["Name": "slow"])
                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .failed }
                #expect(log.first?.error?.contains("timed out") == true, "\(log.first?.error ?? "")")
                #expect(log.first?.responseStatus == nil)
                let fetched = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
                #expect(!fetched.enabled && fetched.disabledReason?.contains("timed out") == true)
            }
        }
    }

    @Test("the target is checked again before each attempt: a server that no longer allows loopback refuses to call it")
    func refusedAtDeliveryTime() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        try await WebhookReceiver.withRunning { receiver in
            let (token, hook) = try await Self.withServer(directory: path, worker: false) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                _ = try await owner.createRecord(in: table.id, ["Name": "to a now-forbidden target"])
                return (try #require(owner.token), hook)
            }
            let strict = WebhookConfiguration(initialBackoff: .milliseconds(10), maximumConsecutiveFailures: 2)
            try await Self.withServer(directory: path, webhooks: strict) { api, _ in
                let owner = api.authorized(token)
                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .failed }
                #expect(log.first?.attempts == 2)
                #expect(log.first?.error?.contains("127.0.0.1 is a loopback address") == true, "\(log)")
                #expect(log.first?.responseStatus == nil)
            }
            #expect(receiver.deliveries.isEmpty, "the receiver was never called")
        }
    }

    @Test(
        "events the log's retention removes before a webhook received them are named in the webhook, not lost silently"
    )
    func trimmedBeforeDelivery() async throws {
        let directory = try TemporaryDirectory()
        try await Self.withServer(directory: directory.path, worker: false) { api, services in
            let (owner, _) = try await api.register("Owner")
            let (_, base, table) = try await owner.scaffold()
            let hook = try await Self.createHook(
                owner,
                base: base.id,
                url: "http://127.0.0.1:9/hook",
                events: [.recordCreated]
            )
            for index in 0..<3 { _ = try await owner.createRecord(in: table.id, ["Name": .string("r\(index)")]) }
            // No worker ran, so the webhook has not been handed the three events; retention removes them.
            let trimmed = try await services.store.trimEvents(olderThan: Date().addingTimeInterval(3600))
            #expect(trimmed >= 3)
            let fetched = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
            let reason = try #require(fetched.disabledReason)
            #expect(reason.contains("removed by the event log's retention"), "\(reason)")
            #expect(reason.hasPrefix("3 event(s)") || reason.contains(" event(s) of the base"), "\(reason)")
        }
    }

    @Test("a webhook failing for longer than the allowed duration is disabled, even before the attempt limit")
    func disabledAfterFailingTooLong() async throws {
        let clock = ManualWallClock(Date())
        let webhooks = WebhookConfiguration(
            allowPrivateTargets: true,
            initialBackoff: .milliseconds(10),
            maximumBackoff: .milliseconds(10),
            maximumConsecutiveFailures: 100,
            maximumFailureDuration: .seconds(60)
        )
        let alwaysFail: @Sendable (Int) async -> Int = { _ in 502 }
        try await WebhookReceiver.withRunning(respond: alwaysFail) { receiver in
            let directory = try TemporaryDirectory()
            try await Self.withServer(directory: directory.path, now: { clock.now }, webhooks: webhooks) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let hook = try await Self.createHook(owner, base: base.id, url: receiver.url, events: [.recordCreated])
                _ = try await owner.createRecord(in: table.id, ["Name": "stuck"])
                // The server's clock stands still, so the retry (due 10 ms later) waits for it.
                let first = try await Self.waitForLog(owner, hook.id) { $0.first?.attempts == 1 }
                #expect(first.first?.status == .pending && first.first?.nextAttemptAt != nil)
                #expect(receiver.deliveries.count == 1)
                clock.advance(by: 120)
                let log = try await Self.waitForLog(owner, hook.id) { $0.first?.status == .failed }
                #expect(log.first?.attempts == 2)
                let fetched = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
                #expect(!fetched.enabled)
                #expect(fetched.disabledReason?.contains("deliveries failed for 120 s") == true, "\(fetched)")
            }
        }
    }

    @Test("the delivery log keeps the newest deliveries, pages newest first, and create replays by Idempotency-Key")
    func logRetentionPagingAndIdempotency() async throws {
        let webhooks = WebhookConfiguration(allowPrivateTargets: true, deliveryLogLimit: 3)
        try await WebhookReceiver.withRunning { receiver in
            try await Self.withServer(webhooks: webhooks) { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (_, base, table) = try await owner.scaffold()
                let request = CreateWebhookRequest(url: receiver.url, events: [.recordCreated])
                let first = try await owner.send(
                    .post,
                    "bases/\(base.id)/webhooks",
                    json: request,
                    headers: [.idempotencyKey: "hook-1"]
                )
                let again = try await owner.send(
                    .post,
                    "bases/\(base.id)/webhooks",
                    json: request,
                    headers: [.idempotencyKey: "hook-1"]
                )
                #expect(first.status == .created && again.status == .created)
                #expect(again.headers[.idempotentReplayed] == "true")
                let hook = try first.decode(Webhook.self)
                #expect(try again.decode(Webhook.self).id == hook.id)
                let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
                #expect(listed.count == 1)

                _ = try await owner.seed(table.id, (1...6).map { ["Name": .string("row \($0)")] })
                try await receiver.waitFor { $0.count >= 6 }
                let log = try await Self.waitForLog(owner, hook.id) { log in
                    log.count <= 3 && log.allSatisfy { $0.status == .succeeded }
                }
                let delivered = receiver.deliveries.compactMap { $0.payload?.event.seq }
                #expect(log.map(\.eventSeq) == Array(delivered.suffix(3).reversed()), "the newest three, newest first")

                let page = try await owner.call(
                    .get,
                    "webhooks/\(hook.id)/deliveries?page_size=2",
                    as: Page<WebhookDelivery>.self
                )
                #expect(page.data.count == 2)
                let cursor = try #require(page.nextCursor)
                let rest = try await owner.call(
                    .get,
                    "webhooks/\(hook.id)/deliveries?page_size=2&cursor=\(cursor)",
                    as: Page<WebhookDelivery>.self
                )
                #expect(rest.data.map(\.eventSeq) == [log[2].eventSeq] && rest.nextCursor == nil)
                let pending = try await owner.call(
                    .get,
                    "webhooks/\(hook.id)/deliveries?status=pending",
                    as: Page<WebhookDelivery>.self
                )
                #expect(pending.data.isEmpty)
            }
        }
    }

    @Test("targets on loopback, private or link-local networks and non-http schemes are refused unless allowed")
    func refusesPrivateTargets() async throws {
        try await Self.withServer(webhooks: WebhookConfiguration()) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, _) = try await owner.scaffold()
            let refused = [
                "http://127.0.0.1:8080/hook", "http://10.0.0.1/hook", "http://[::1]:9000/hook",
                "http://localhost/hook", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data",
                "http://0.0.0.0/", "http://192.168.1.10/", "http://172.20.0.5/", "http://[fe80::1]/",
                "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "ftp://example.com/", "not a url",
                "http://localhost./hook", "http://LOCALHOST/hook", "http://api.localhost/hook",
            ]
            for url in refused {
                let response = try await owner.send(
                    .post,
                    "bases/\(base.id)/webhooks",
                    json: CreateWebhookRequest(url: url)
                )
                let error = expectError(response, .unprocessableContent, .validation, url)
                #expect(error?.message.contains("url") == true, "\(url): \(error?.message ?? "")")
            }
            // A public address is accepted (no DNS needed for a literal).
            let hook = try await Self.createHook(owner, base: base.id, url: "https://93.184.216.34/hook")
            #expect(hook.url == "https://93.184.216.34/hook")
            let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
            #expect(listed.map(\.id) == [hook.id])
        }
    }

    @Test("the address classifier and the backoff schedule")
    func classifierAndBackoff() {
        #expect(IPAddress(literal: "8.8.8.8")?.restriction == nil)
        #expect(IPAddress(literal: "2001:4860:4860::8888")?.restriction == nil)
        #expect(IPAddress(literal: "127.3.2.1")?.restriction?.kind == "loopback")
        #expect(IPAddress(literal: "::1")?.restriction?.kind == "loopback")
        #expect(IPAddress(literal: "172.31.255.255")?.restriction?.kind == "private")
        #expect(IPAddress(literal: "172.32.0.1")?.restriction == nil)
        #expect(IPAddress(literal: "::")?.restriction?.kind == "unspecified")
        #expect(IPAddress(literal: "example.com") == nil)
        // Names are checked by what they resolve to (here through /etc/hosts), as before each attempt.
        #expect(IPAddress.resolve("localhost").contains { $0.restriction?.kind == "loopback" })
        let configuration = WebhookConfiguration(initialBackoff: .seconds(1), maximumBackoff: .seconds(10))
        #expect(configuration.backoff(afterAttempts: 1, jitter: 1) == .seconds(1))
        #expect(configuration.backoff(afterAttempts: 3, jitter: 1) == .seconds(4))
        #expect(configuration.backoff(afterAttempts: 30, jitter: 1) == .seconds(10))
        #expect(configuration.backoff(afterAttempts: 3, jitter: 0.5) == .seconds(2))
    }

    @Test("loopback is allowed alone when allowLoopbackTargets is on (pyat serve --demo)")
    func loopbackOnlyAllowance() async throws {
        let webhooks = WebhookConfiguration(allowLoopbackTargets: true)
        try await Self.withServer(webhooks: webhooks) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (_, base, _) = try await owner.scaffold()
            _ = try await Self.createHook(owner, base: base.id, url: "http://127.0.0.1:9/hook")
            _ = try await Self.createHook(owner, base: base.id, url: "http://localhost:9/hook")
            let response = try await owner.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: CreateWebhookRequest(url: "http://10.1.2.3/hook")
            )
            expectError(response, .unprocessableContent, .validation)
        }
    }

    @Test("roles: viewers can neither see, create nor delete webhooks; non-members get 404; bad input is 422")
    func rolesAndValidation() async throws {
        try await Self.withServer { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (viewer, viewerUser) = try await api.register("Viewer")
            let (creator, creatorUser) = try await api.register("Creator")
            let (stranger, _) = try await api.register("Stranger")
            let (workspace, base, table) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: viewerUser.id, role: .viewer)
            try await owner.addMember(workspace.id, user: creatorUser.id, role: .creator)
            let url = "http://127.0.0.1:9/hook"

            let denied = try await viewer.send(.post, "bases/\(base.id)/webhooks", json: CreateWebhookRequest(url: url))
            expectError(denied, .forbidden, .forbidden)
            let hook = try await Self.createHook(creator, base: base.id, url: url, table: table.id)
            let listed = try await creator.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
            #expect(listed.map(\.id) == [hook.id] && listed.first?.secret == nil)
            expectError(try await viewer.send(.get, "bases/\(base.id)/webhooks"), .forbidden, .forbidden)
            expectError(try await viewer.send(.get, "webhooks/\(hook.id)/deliveries"), .forbidden, .forbidden)
            expectError(try await viewer.send(.delete, "webhooks/\(hook.id)"), .forbidden, .forbidden)
            expectError(
                try await viewer.send(.patch, "webhooks/\(hook.id)", json: UpdateWebhookRequest(enabled: false)),
                .forbidden,
                .forbidden
            )

            for (method, path) in [
                (HTTPRequest.Method.get, "bases/\(base.id)/webhooks"), (.get, "webhooks/\(hook.id)"),
                (.get, "webhooks/\(hook.id)/deliveries"), (.delete, "webhooks/\(hook.id)"),
            ] {
                expectError(try await stranger.send(method, path), .notFound, .notFound, "\(method) \(path)")
            }
            expectError(
                try await stranger.send(.post, "bases/\(base.id)/webhooks", json: CreateWebhookRequest(url: url)),
                .notFound,
                .notFound
            )

            let unknownEvent = try await owner.send(
                .post,
                "bases/\(base.id)/webhooks",
                raw: #"{"url": "http://127.0.0.1:9/hook", "events": ["record.exploded"]}"#
            )
            expectError(unknownEvent, .unprocessableContent, .validation)
            let otherBase = try await owner.createBase(in: workspace.id, "Other")
            let otherTable = try await owner.createTable(in: otherBase.id)
            let wrongTable = try await owner.send(
                .post,
                "bases/\(base.id)/webhooks",
                json: CreateWebhookRequest(url: url, tableID: otherTable.id)
            )
            expectError(wrongTable, .unprocessableContent, .validation)
            expectError(
                try await owner.send(.get, "webhooks/\(hook.id)/deliveries?page_size=0"),
                .unprocessableContent,
                .validation
            )

            let disabled = try await owner.call(
                .patch,
                "webhooks/\(hook.id)",
                json: UpdateWebhookRequest(enabled: false),
                as: Webhook.self
            )
            #expect(!disabled.enabled && disabled.disabledReason != nil)
            let deleted = try await creator.send(.delete, "webhooks/\(hook.id)")
            #expect(deleted.status == .noContent)
            expectError(try await owner.send(.get, "webhooks/\(hook.id)"), .notFound, .notFound)
            let types = try await owner.events().map(\.type)
            #expect(
                types.contains(.webhookCreated) && types.contains(.webhookUpdated) && types.contains(.webhookDeleted)
            )
            #expect(!(try await owner.send(.get, "events/log?since=0").text.contains("\"secret\"")))
        }
    }
}
