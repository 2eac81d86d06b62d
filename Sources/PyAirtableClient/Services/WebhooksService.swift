import Foundation
import HTTPTypes
import PyAirtableModels

/// Webhooks of a base: the server POSTs matching events to a URL, signed with the webhook's secret.
///
/// ```swift
/// let hook = try await client.webhooks.create(in: base, url: URL(string: "https://example.com/hooks")!,
///                                             events: [.recordCreated], table: table)
/// let secret = hook.secret!  // shown only now: keep it where the receiver can read it
/// ```
///
/// Reads are never cached: the failure count and delivery log change as deliveries run.
public struct WebhooksService: Sendable {
    let client: PyAirtableClient
    private static func operation(_ name: String) -> ClientOperation { .init(service: "webhooks", name: name) }

    /// Every webhook of a base (any member may list them; secrets are never included).
    public func list(in base: BaseID) async throws -> [Webhook] {
        try await client.collection("/api/v1/bases/\(base)/webhooks", operation: Self.operation("list"))
    }

    /// One webhook, with whether it is enabled and why not.
    public func get(_ id: WebhookID) async throws -> Webhook {
        try await client.send(
            PyAirtableClient.request(.get, "/api/v1/webhooks/\(id)", operation: Self.operation("get")),
            as: Webhook.self
        )
    }

    /// Registers a webhook (the creator role or higher).
    /// - Parameters:
    ///   - base: The base whose events it receives.
    ///   - url: An http or https URL; loopback and private-network targets are refused unless the
    ///     server allows them.
    ///   - events: The event types it receives; empty for every event of the base.
    ///   - table: Only events of this table, when set.
    /// - Returns: The webhook with its `secret`, which no later answer shows.
    public func create(
        in base: BaseID,
        url: URL,
        events: [EventType] = [],
        table: TableID? = nil
    ) async throws -> Webhook {
        try await client.send(
            PyAirtableClient.request(
                .post,
                "/api/v1/bases/\(base)/webhooks",
                body: CreateWebhookRequest(
                    url: url.absoluteString,
                    events: events.isEmpty ? nil : events,
                    tableID: table
                ),
                operation: Self.operation("create")
            ),
            as: Webhook.self
        )
    }

    /// Turns a webhook back on: clears its failure count and retries the deliveries it gave up on.
    @discardableResult
    public func enable(_ id: WebhookID) async throws -> Webhook {
        try await setEnabled(id, true)
    }

    /// Turns a webhook off: nothing is delivered to it until it is enabled again.
    @discardableResult
    public func disable(_ id: WebhookID) async throws -> Webhook {
        try await setEnabled(id, false)
    }

    private func setEnabled(_ id: WebhookID, _ enabled: Bool) async throws -> Webhook {
        try await client.send(
            PyAirtableClient.request(
                .patch,
                "/api/v1/webhooks/\(id)",
                body: UpdateWebhookRequest(enabled: enabled),
                operation: Self.operation("update")
            ),
            as: Webhook.self
        )
    }

    /// Deletes a webhook and its delivery log.
    public func delete(_ id: WebhookID) async throws {
        try await client.execute(
            PyAirtableClient.request(.delete, "/api/v1/webhooks/\(id)", operation: Self.operation("delete"))
        )
    }

    /// One page of a webhook's delivery log, newest event first.
    /// - Parameters:
    ///   - webhook: The webhook.
    ///   - status: Only deliveries in this state, when set.
    ///   - pageSize: At most this many (1…1000; the server's default is 100).
    ///   - cursor: The `nextCursor` of the previous page.
    public func deliveries(
        of webhook: WebhookID,
        status: WebhookDelivery.Status? = nil,
        pageSize: Int? = nil,
        cursor: String? = nil
    ) async throws -> Page<WebhookDelivery> {
        var query: [QueryItem] = []
        if let status { query.append(QueryItem("status", status.rawValue)) }
        if let pageSize { query.append(QueryItem("page_size", String(pageSize))) }
        if let cursor { query.append(QueryItem("cursor", cursor)) }
        return try await client.send(
            PyAirtableClient.request(
                .get,
                "/api/v1/webhooks/\(webhook)/deliveries",
                query: query,
                operation: Self.operation("deliveries")
            ),
            as: Page<WebhookDelivery>.self
        )
    }

    /// A webhook's whole delivery log, newest event first, fetched a page at a time as the loop asks.
    public func allDeliveries(
        of webhook: WebhookID,
        status: WebhookDelivery.Status? = nil,
        pageSize: Int? = nil
    ) -> PageSequence<WebhookDelivery> {
        PageSequence { cursor in
            try await deliveries(of: webhook, status: status, pageSize: pageSize, cursor: cursor)
        }
    }
}
