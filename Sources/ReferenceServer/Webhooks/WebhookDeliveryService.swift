import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import PyAirtableModels
import ServiceLifecycle
import Synchronization

/// Delivers webhook events, run with the application.
///
/// Woken by every commit (as realtime fan-out is) and by a timer for the next retry, it
/// 1. turns the events after each enabled webhook's cursor into pending deliveries, advancing the
///    cursor in the same transaction, so every matching event gets exactly one delivery id;
/// 2. POSTs each webhook's oldest pending delivery (a webhook's deliveries go out in event order;
///    different webhooks deliver concurrently), signed with the webhook's secret;
/// 3. records the outcome: 2xx ends the delivery; anything else (an error status, a refused
///    connection, a timeout) schedules another attempt after an exponential, jittered backoff, and
///    a webhook that fails too many times in a row, or for too long, is disabled with the reason.
///
/// Cursors and pending deliveries live in SQLite, so a restarted server resumes where it stopped; an
/// attempt under way when the process stopped is made again, with the same delivery id (receivers
/// dedupe by it).
struct WebhookDeliveryService: Service {
    let services: ServerServices
    private var configuration: WebhookConfiguration { services.configuration.webhooks }
    private var store: any WebhookRepository { services.store }
    private var logger: Logger { services.logger }
    /// How many events one enqueue pass looks at per webhook.
    static let enqueueBatch = 500
    /// The longest the worker sleeps without a signal (a safety net; commits and retries wake it).
    static let idleWait: Duration = .seconds(30)

    func run() async throws {
        guard configuration.deliveryEnabled else {
            try? await gracefulShutdown()
            return
        }
        let wakeup = WebhookWakeup(clock: services.configuration.clock)
        store.observeCommits { wakeup.signal() }
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        httpConfiguration.timeout = .init(
            connect: .nanoseconds(configuration.attemptTimeout.nanosecondsValue),
            read: .nanoseconds(configuration.attemptTimeout.nanosecondsValue)
        )
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        let metrics = WebhookMetrics(registry: services.metrics.registry)
        await cancelWhenGracefulShutdown {
            await deliverUntilCancelled(client: client, wakeup: wakeup, metrics: metrics)
        }
        try? await client.shutdown()
    }

    private func deliverUntilCancelled(client: HTTPClient, wakeup: WebhookWakeup, metrics: WebhookMetrics) async {
        let inFlight = InFlightWebhooks()
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                var wait = Self.idleWait
                do {
                    // A webhook busy before the read may finish during it: what the read says of it can
                    // be stale (the delivery just made, still pending), so it waits for the next pass,
                    // which its finishing attempt triggers.
                    var busyBeforeRead = inFlight.ids.withLock { $0 }
                    var now = services.configuration.now()
                    var work = try await store.webhookWork(now: now)
                    if work.backlog {
                        try await enqueue()
                        busyBeforeRead = inFlight.ids.withLock { $0 }
                        now = services.configuration.now()
                        work = try await store.webhookWork(now: now)
                    }
                    for delivery in work.due where !busyBeforeRead.contains(delivery.webhookID) {
                        let started = inFlight.ids.withLock { running in
                            guard running.count < configuration.maximumConcurrentDeliveries else { return false }
                            return running.insert(delivery.webhookID).inserted
                        }
                        guard started else { continue }
                        group.addTask {
                            // The webhook's next deliveries follow at once while they are due; one
                            // waiting for its backoff is left to the timer of the main loop.
                            var next: PendingWebhookDelivery? = delivery
                            while let current = next, !Task.isCancelled {
                                await attempt(current, client: client, metrics: metrics)
                                next = try? await store.nextWebhookDelivery(
                                    webhook: current.webhookID,
                                    now: services.configuration.now()
                                )
                            }
                            inFlight.ids.withLock { _ = $0.remove(delivery.webhookID) }
                            wakeup.signal()
                        }
                    }
                    if let nextDue = work.nextDue {
                        let seconds = max(0, nextDue.timeIntervalSince(now))
                        wait = min(wait, .milliseconds(Int64((seconds * 1000).rounded(.up))))
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("webhook delivery pass failed", metadata: ["error": "\(error)"])
                    wait = .seconds(1)
                }
                await wakeup.wait(upTo: wait)
            }
            group.cancelAll()
        }
    }

    /// Hands new events to the webhooks that want them. Called only when a read saw a backlog: the
    /// worker's own writes wake it too, and an empty write would wake it again.
    private func enqueue() async throws {
        while try await store.enqueueWebhookDeliveries(now: services.configuration.now(), limit: Self.enqueueBatch),
            !Task.isCancelled
        {}
    }

    /// Makes one attempt and records it; a cancelled attempt (shutdown) is not recorded, so the
    /// delivery is made again after a restart.
    private func attempt(_ delivery: PendingWebhookDelivery, client: HTTPClient, metrics: WebhookMetrics) async {
        var outcome = WebhookAttempt(
            delivery: delivery.id,
            webhook: delivery.webhookID,
            at: services.configuration.now(),
            succeeded: false
        )
        do {
            let target = try WebhookTarget(delivery.url, maximumLength: .max)
            if !configuration.allowPrivateTargets,
                let refusal = await target.refusal(
                    resolve: true,
                    allowLoopback: configuration.allowLoopbackTargets
                )
            {
                outcome.error = "refused: \(refusal); webhooks may only call public addresses"
            } else if let secret = delivery.secret {
                var request = HTTPClientRequest(url: delivery.url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "pyat-webhooks/1")
                request.headers.add(
                    name: WebhookPayload.signatureHeader,
                    value: WebhookSignature.header(body: delivery.body, secret: secret)
                )
                request.headers.add(name: WebhookPayload.deliveryHeader, value: delivery.id.rawValue)
                request.headers.add(name: WebhookPayload.eventHeader, value: delivery.eventType.rawValue)
                request.body = .bytes(ByteBuffer(bytes: delivery.body))
                let response = try await client.execute(
                    request,
                    timeout: .nanoseconds(configuration.attemptTimeout.nanosecondsValue)
                )
                let body = try? await response.body.collect(upTo: 16 * 1024)
                let status = Int(response.status.code)
                outcome.responseStatus = status
                outcome.succeeded = (200..<300).contains(status)
                if !outcome.succeeded {
                    let text = body.map { String(buffer: $0).prefix(200) } ?? ""
                    outcome.error = "HTTP \(status)" + (text.isEmpty ? "" : ": \(text)")
                }
            } else {
                outcome.error =
                    "the webhook's secret cannot be read (sealed with another storage secret): recreate the webhook"
            }
        } catch {
            if Task.isCancelled { return }
            outcome.error = describe(error)
        }
        outcome.at = services.configuration.now()
        (outcome.succeeded ? metrics.succeeded : metrics.failed).increment()
        let retryAt = outcome.at.addingTimeInterval(configuration.backoff(afterAttempts: delivery.attempts + 1).seconds)
        do {
            try await store.recordWebhookAttempt(outcome, retryAt: retryAt, policy: configuration)
        } catch {
            logger.warning(
                "could not record a webhook attempt",
                metadata: ["delivery": "\(delivery.id)", "error": "\(error)"]
            )
        }
        if !outcome.succeeded {
            logger.info(
                "webhook delivery attempt failed",
                metadata: [
                    "webhook": "\(delivery.webhookID)", "delivery": "\(delivery.id)",
                    "attempt": "\(delivery.attempts + 1)", "error": "\(outcome.error ?? "")",
                ]
            )
        }
    }

    private func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout:
                return "timed out after \(configuration.attemptTimeout)"
            default:
                break
            }
        }
        if let error = error as? ServerError { return error.message }
        if let error = error as? StorageError { return ErrorMiddleware.serverError(for: error).message }
        return String("\(error)".prefix(300))
    }
}

/// `pyat_webhook_attempts_total{outcome="succeeded"|"failed"}` on `/metrics`.
private struct WebhookMetrics: Sendable {
    let succeeded: Counter
    let failed: Counter

    init(registry: PrometheusCollectorRegistry) {
        let descriptor = MetricNameDescriptor(
            namespace: "pyat",
            metricName: "webhook_attempts",
            unitName: "total",
            helpText: "Webhook delivery attempts by outcome"
        )
        succeeded = registry.makeCounter(descriptor: descriptor, labels: [("outcome", "succeeded")])
        failed = registry.makeCounter(descriptor: descriptor, labels: [("outcome", "failed")])
    }
}

/// The webhooks with an attempt under way: one at a time each, so deliveries stay in event order.
private final class InFlightWebhooks: Sendable {
    let ids = Mutex<Set<WebhookID>>([])
}

extension Duration {
    var nanosecondsValue: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
