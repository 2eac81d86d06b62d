import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableModels
import ServiceLifecycle

/// Pings the notification URLs of Airtable webhooks when they have payloads no ping has announced:
/// `POST {"base": {"id"}, "webhook": {"id"}, "timestamp"}` with `X-Airtable-Content-MAC:
/// hmac-sha256=<hex HMAC-SHA256 of the body under the webhook's secret>`, the header pyairtable's
/// `WebhookNotification.from_request` checks. A failed ping is retried with backoff (5 s doubling,
/// at most 5 minutes, ``AirtableConfiguration/maximumPingRetries`` times) and each outcome is the
/// webhook's `lastNotificationResult`. Targets get the webhook targets' check. Writes never wait for
/// pings: the worker runs beside them, woken by commits, and turns new events into payloads first.
struct AirtableWebhookPinger: Service {
    let services: ServerServices
    static let idleWait: Duration = .seconds(30)

    private var configuration: AirtableConfiguration { services.configuration.airtable }
    private var store: any DataStore { services.store }

    func run() async throws {
        guard services.configuration.webhooks.deliveryEnabled else {
            try? await gracefulShutdown()
            return
        }
        let wakeup = WebhookWakeup(clock: services.configuration.clock)
        store.observeCommits { wakeup.signal() }
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.redirectConfiguration = .disallow
        let timeout = services.configuration.webhooks.attemptTimeout
        httpConfiguration.timeout = .init(
            connect: .nanoseconds(timeout.nanosecondsValue),
            read: .nanoseconds(timeout.nanosecondsValue)
        )
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var wait = Self.idleWait
                do {
                    let now = services.configuration.now()
                    let work = try await store.airtableWebhookWork(now: now)
                    let pingDue = work.nextPing.map { $0 <= now } ?? false
                    if work.backlog || pingDue {
                        let due = try await store.advanceAirtableWebhooks(
                            now: services.configuration.now(),
                            retention: configuration.payloadRetention
                        )
                        for hook in due where !Task.isCancelled {
                            await ping(hook, client: client)
                        }
                        wait = .zero
                    } else if let next = work.nextPing {
                        let seconds = max(0, next.timeIntervalSince(now))
                        wait = min(wait, .milliseconds(Int64((seconds * 1000).rounded(.up))))
                    }
                } catch {
                    if Task.isCancelled { break }
                    services.logger.warning("airtable webhook pass failed", metadata: ["error": "\(error)"])
                    wait = .seconds(1)
                }
                if wait > .zero { await wakeup.wait(upTo: wait) }
            }
        }
        try? await client.shutdown()
    }

    /// The ping's body and its MAC header value.
    static func notification(base: BaseID, webhook: String, at time: Date, secret: [UInt8]) -> (Data, String) {
        let body = Data(
            #"{"base":{"id":"\#(base.rawValue)"},"webhook":{"id":"\#(webhook)"},"timestamp":"\#(Timestamp.format(time))"}"#
                .utf8
        )
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: secret))
        return (body, "hmac-sha256=" + Hex.encode(mac))
    }

    private func ping(_ hook: AirtableWebhookRow, client: HTTPClient) async {
        guard let url = hook.notificationURL else { return }
        let started = ContinuousClock.now
        let through = hook.nextPayload - 1
        var error: String?
        do {
            let target = try WebhookTarget(url, maximumLength: .max)
            let webhooks = services.configuration.webhooks
            if !webhooks.allowPrivateTargets,
                let refusal = await target.refusal(resolve: true, allowLoopback: webhooks.allowLoopbackTargets)
            {
                error = "refused: \(refusal); notifications may only go to public addresses"
            } else {
                let secret = try await store.airtableWebhookSecret(id: hook.id)
                let (body, mac) = Self.notification(
                    base: hook.baseID,
                    webhook: hook.id,
                    at: services.configuration.now(),
                    secret: secret
                )
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "User-Agent", value: "pyat-airtable-webhooks/1")
                request.headers.add(name: "X-Airtable-Content-MAC", value: mac)
                request.body = .bytes(ByteBuffer(bytes: body))
                let response = try await client.execute(
                    request,
                    timeout: .nanoseconds(services.configuration.webhooks.attemptTimeout.nanosecondsValue)
                )
                _ = try? await response.body.collect(upTo: 16 * 1024)
                if !(200..<300).contains(Int(response.status.code)) { error = "HTTP \(response.status.code)" }
            }
        } catch let failure {
            if Task.isCancelled { return }
            error = (failure as? ServerError)?.message ?? "\(failure)"
        }
        let now = services.configuration.now()
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let retry = error != nil && hook.pingRetries < configuration.maximumPingRetries
        var result: [String: JSONValue] = [
            "success": .bool(error == nil),
            "completionTimestamp": .string(Timestamp.format(now)),
            "durationMs": .number(milliseconds.rounded()),
            "retryNumber": .number(Double(hook.pingRetries)),
        ]
        if let error {
            result["error"] = .object(["message": .string(error)])
            result["willBeRetried"] = .bool(retry)
        }
        let backoff = min(300, 5 * pow(2, Double(hook.pingRetries)))
        let encoded = (try? JSONCoding.encoder.encode(JSONValue.object(result))).map {
            String(decoding: $0, as: UTF8.self)
        }
        do {
            try await store.recordAirtablePing(
                id: hook.id,
                announcedThrough: through,
                success: error == nil,
                result: encoded ?? "null",
                nextAttempt: retry ? now.addingTimeInterval(backoff) : nil,
                now: now
            )
        } catch {
            services.logger.warning("could not record an airtable webhook ping", metadata: ["error": "\(error)"])
        }
    }
}
