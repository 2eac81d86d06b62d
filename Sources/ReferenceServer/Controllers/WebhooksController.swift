import Foundation
import Hummingbird
import PyAirtableModels

/// Webhooks of a base and their delivery logs, for creators and owners alone: they register, change,
/// delete, list and read them (other members get 403, since a webhook's URL and its log, which
/// quotes receivers' answers, can carry credentials). The secret is shown only when created.
struct WebhooksController {
    let services: ServerServices
    let store: any WebhookRepository
    var now: Date { services.configuration.now() }
    var configuration: WebhookConfiguration { services.configuration.webhooks }

    /// The event types a webhook may ask for: those that belong to a base.
    static let subscribableEvents: [EventType] = [
        .baseUpdated, .baseDeleted, .tableCreated, .tableUpdated, .tableDeleted, .fieldCreated, .fieldUpdated,
        .fieldDeleted, .viewCreated, .viewUpdated, .viewDeleted, .recordCreated, .recordUpdated, .recordDeleted,
        .commentCreated, .commentUpdated, .commentDeleted, .webhookCreated, .webhookUpdated, .webhookDeleted,
    ]
    /// The most deliveries one page of the log returns.
    static let maximumPageSize = 1000

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("bases/{id}/webhooks", use: listWebhooks)
        group.post("bases/{id}/webhooks", use: createWebhook)
        group.get("webhooks/{id}", use: getWebhook)
        group.patch("webhooks/{id}", use: updateWebhook)
        group.delete("webhooks/{id}", use: deleteWebhook)
        group.get("webhooks/{id}/deliveries", use: listDeliveries)
    }

    @Sendable func listWebhooks(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        return try .listJSON(
            Page(data: try await store.webhooks(base: try context.id("id", "base"), user: user)),
            request: request
        )
    }

    @Sendable func createWebhook(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        var body = try await request.decodeJSON(as: CreateWebhookRequest.self)
        let target = try WebhookTarget(body.url, maximumLength: configuration.maximumURLLength)
        if !configuration.allowPrivateTargets,
            let refusal = await target.refusal(
                resolve: true,
                allowLoopback: configuration.allowLoopbackTargets
            )
        {
            throw ServerError.validation(
                "url is refused: \(refusal); a webhook must target a public address this server can resolve "
                    + "(loopback, private, link-local and unspecified addresses are refused)",
                field: "url"
            )
        }
        body.url = target.url.absoluteString
        if let events = body.events {
            let allowed = Set(Self.subscribableEvents)
            if let unknown = events.first(where: { !allowed.contains($0) }) {
                throw ServerError.validation(
                    "events: '\(unknown)' is not an event a webhook can receive; use any of "
                        + Self.subscribableEvents.map(\.rawValue).joined(separator: ", "),
                    field: "events"
                )
            }
            var seen = Set<EventType>()
            body.events = events.filter { seen.insert($0).inserted }
        }
        return .stored(
            try await store.createWebhook(
                base: try context.id("id", "base"),
                body,
                secret: WebhookSignature.makeSecret(),
                maximumPerBase: configuration.maximumWebhooksPerBase,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func getWebhook(_ request: Request, context: AppRequestContext) async throws -> Response {
        let webhook = try await store.webhook(id: try context.id("id", "webhook"), user: try context.requireUser())
        return try .json(webhook)
    }

    @Sendable func updateWebhook(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        let body = try await request.decodeJSON(as: UpdateWebhookRequest.self)
        guard body.enabled != nil else {
            throw ServerError.validation("nothing to change: send {\"enabled\": true} or {\"enabled\": false}")
        }
        return .stored(
            try await store.updateWebhook(
                id: try context.id("id", "webhook"),
                body,
                context: context.write(now: now)
            )
        )
    }

    @Sendable func deleteWebhook(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try context.requireUser()
        return .stored(
            try await store.deleteWebhook(id: try context.id("id", "webhook"), context: context.write(now: now))
        )
    }

    @Sendable func listDeliveries(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        var status: WebhookDelivery.Status?
        if let raw = query.get("status") {
            guard let value = WebhookDelivery.Status(rawValue: raw) else {
                throw ServerError.validation("status must be pending, succeeded or failed", field: "status")
            }
            status = value
        }
        var before: Int64?
        if let raw = query.get("cursor") {
            // Only the canonical decimal this route hands out (the document's pattern), not `+5` or `007`.
            guard raw.utf8.count <= 18, let value = Int64(raw), value > 0, String(value) == raw else {
                throw ServerError.validation("cursor is not a cursor this route returned", field: "cursor")
            }
            before = value
        }
        var limit = 100
        if let raw = query.get("page_size") {
            guard let value = Int(raw), (1...Self.maximumPageSize).contains(value) else {
                throw ServerError.validation(
                    "page_size must be from 1 to \(Self.maximumPageSize)",
                    field: "page_size"
                )
            }
            limit = value
        }
        let page = try await store.deliveries(
            webhook: try context.id("id", "webhook"),
            user: user,
            status: status,
            before: before,
            limit: limit
        )
        return try .json(page)
    }
}
