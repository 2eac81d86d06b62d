import ArgumentParser
import Foundation
import PyAirtableClient
import PyAirtableModels

extension Pyat {
    /// `pyat webhooks …`.
    struct Webhooks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Register, list, show, enable or disable, and delete the webhooks of a base; read their deliveries.",
            subcommands: [List.self, Get.self, Create.self, Enable.self, Disable.self, Delete.self, Deliveries.self]
        )
    }
}

extension Pyat.Webhooks {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the webhooks of a base (secrets are never shown)."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        func validate() throws {
            _ = try BaseID.argument(base)
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let webhooks = try await options.withClient { try await $0.webhooks.list(base: id) }
            try options.output.list(webhooks)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a webhook, and why it is disabled if it is.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: String

        func validate() throws {
            _ = try WebhookID.argument(webhook)
        }

        func run() async throws {
            let id = try WebhookID.argument(webhook)
            let webhook = try await options.withClient { try await $0.webhooks.get(id) }
            try options.output.item(webhook)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a webhook on a base.",
            discussion: """
                Deliveries are POSTed as JSON with X-PyAirtable-Signature: sha256=<hex HMAC-SHA256 of the raw
                body keyed with the secret>, X-PyAirtable-Delivery and X-PyAirtable-Event. The secret is shown
                only in this command's output: store it now.
                """
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The base id (app…).")
        var base: String

        @Option(help: "The http or https URL to POST deliveries to.")
        var url: String

        @Option(help: "Comma-separated event types, such as record.created,record.updated (default: every event).")
        var events: String?

        @Option(help: "Only events of this table (tbl…).")
        var table: String?

        var eventTypes: [EventType] {
            (events ?? "").split(separator: ",").map { EventType(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
                .filter { !$0.rawValue.isEmpty }
        }

        func validate() throws {
            _ = try BaseID.argument(base)
            if let table { _ = try TableID.argument(table) }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ValidationError("--url must be an http:// or https:// URL")
            }
            if events != nil, eventTypes.isEmpty {
                throw ValidationError("--events must name at least one event type, such as record.created")
            }
        }

        func run() async throws {
            let id = try BaseID.argument(base)
            let table = try self.table.map { try TableID.argument($0) }
            let events = eventTypes
            let url = self.url
            let webhook = try await options.withClient {
                try await $0.webhooks.create(base: id, url: url, events: events, table: table)
            }
            try options.output.item(webhook, columns: Webhook.columnsWithSecret)
            options.output.message("The secret is shown only once: store it now to verify deliveries.")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a webhook back on: its failure count resets and the deliveries it gave up on go out again."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: String

        func validate() throws {
            _ = try WebhookID.argument(webhook)
        }

        func run() async throws {
            let id = try WebhookID.argument(webhook)
            let webhook = try await options.withClient { try await $0.webhooks.setEnabled(id, true) }
            try options.output.item(webhook)
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a webhook off: events are kept for it and delivered when it is enabled again."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: String

        func validate() throws {
            _ = try WebhookID.argument(webhook)
        }

        func run() async throws {
            let id = try WebhookID.argument(webhook)
            let webhook = try await options.withClient { try await $0.webhooks.setEnabled(id, false) }
            try options.output.item(webhook)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a webhook and its delivery log.")

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: String

        func validate() throws {
            _ = try WebhookID.argument(webhook)
        }

        func run() async throws {
            let id = try WebhookID.argument(webhook)
            try await options.withClient { try await $0.webhooks.delete(id) }
            try options.output.deleted(id.rawValue, kind: "webhook")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a webhook's delivery log, newest first: status, attempts, the last answer or error."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: String

        @Option(help: "Only pending, succeeded or failed deliveries.")
        var status: String?

        @Option(help: "At most this many deliveries (1…1000).")
        var limit: Int = 100

        func validate() throws {
            _ = try WebhookID.argument(webhook)
            if let status, WebhookDelivery.Status(rawValue: status) == nil {
                throw ValidationError("--status must be pending, succeeded or failed")
            }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func run() async throws {
            let id = try WebhookID.argument(webhook)
            let status = self.status.flatMap(WebhookDelivery.Status.init(rawValue:))
            let limit = self.limit
            let page = try await options.withClient {
                try await $0.webhooks.deliveries(webhook: id, status: status, pageSize: limit)
            }
            try options.output.list(page.data)
        }
    }
}

extension Webhook: Tabular {
    static let columns: [OutputColumn<Webhook>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("url") { $0.url },
        OutputColumn("events") { $0.events.isEmpty ? "(all)" : $0.events.map(\.rawValue).joined(separator: ",") },
        OutputColumn("table_id") { CellText.of($0.tableID?.rawValue) },
        OutputColumn("enabled") { String($0.enabled) },
        OutputColumn("failure_count") { String($0.failureCount) },
        OutputColumn("disabled_reason") { CellText.of($0.disabledReason) },
    ]

    /// The columns of the answer that created a webhook: the only one that has its secret.
    static let columnsWithSecret: [OutputColumn<Webhook>] =
        columns + [OutputColumn("secret") { CellText.of($0.secret) }]
}

extension WebhookDelivery: Tabular {
    static let columns: [OutputColumn<WebhookDelivery>] = [
        OutputColumn("id") { $0.id.rawValue },
        OutputColumn("event_seq") { String($0.eventSeq) },
        OutputColumn("event_type") { CellText.of($0.eventType?.rawValue) },
        OutputColumn("status") { $0.status.rawValue },
        OutputColumn("attempts") { String($0.attempts) },
        OutputColumn("response_status") { $0.responseStatus.map(String.init) ?? "" },
        OutputColumn("error") { CellText.of($0.error) },
        OutputColumn("next_attempt_at") { $0.nextAttemptAt.map(CellText.of) ?? "" },
        OutputColumn("delivered_at") { $0.deliveredAt.map(CellText.of) ?? "" },
    ]
}
