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
            subcommands: [
                ListCommand<Resource>.self, GetCommand<Resource>.self, Create.self, Enable.self, Disable.self,
                DeleteCommand<Resource>.self, Deliveries.self,
            ]
        )
    }
}

extension Pyat.Webhooks {
    enum Resource: ListableResource, GettableResource, DeletableResource {
        typealias Precondition = NoPrecondition
        typealias Item = Webhook
        typealias Kind = WebhookKind
        static let name = "webhook"
        static let idHelp = "The webhook id (whk…)."
        static let parentName = "base"
        static let parentHelp = "The base id (app…)."
        static let listAbstract = "List the webhooks of a base (secrets are never shown)."
        static let getAbstract = "Show a webhook, and why it is disabled if it is."
        static let deleteAbstract = "Delete a webhook and its delivery log."

        static func list(in base: BaseID, from client: PyAirtableClient) async throws -> [Webhook] {
            try await client.webhooks.list(in: base)
        }

        static func get(_ id: WebhookID, from client: PyAirtableClient) async throws -> Webhook {
            try await client.webhooks.get(id)
        }

        static func delete(_ id: WebhookID, ifVersion: Int?, from client: PyAirtableClient) async throws {
            try await client.webhooks.delete(id)
        }
    }

    struct Create: ClientCommand {
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
        var base: BaseID

        @Option(help: "The http or https URL to POST deliveries to.")
        var url: String

        @Option(help: "Comma-separated event types, such as record.created,record.updated (default: every event).")
        var events: String?

        @Option(help: "Only events of this table (tbl…).")
        var table: TableID?

        var eventTypes: [EventType] {
            (events ?? "").split(separator: ",").map { EventType(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
                .filter { !$0.rawValue.isEmpty }
        }

        func validate() throws {
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url) != nil else {
                throw ValidationError("--url must be an http:// or https:// URL")
            }
            if events != nil, eventTypes.isEmpty {
                throw ValidationError("--events must name at least one event type, such as record.created")
            }
        }

        func run() async throws {
            let webhook = try await options.withClient {
                try await $0.webhooks.create(in: base, url: URL(string: url)!, events: eventTypes, table: table)
            }
            try options.output.item(webhook, columns: Webhook.columnsWithSecret)
            options.output.message("The secret is shown only once: store it now to verify deliveries.")
        }
    }

    /// `enable` and `disable`: a webhook switched on or off, printed.
    protocol SwitchCommand: ResourceCommand where Answer == Webhook {
        /// Whether the command turns the webhook on.
        static var enables: Bool { get }
        var webhook: WebhookID { get }
    }

    struct Enable: SwitchCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a webhook back on: its failure count resets and the deliveries it gave up on go out again."
        )
        static let enables = true

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: WebhookID
    }

    struct Disable: SwitchCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a webhook off: events are kept for it and delivered when it is enabled again."
        )
        static let enables = false

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: WebhookID
    }

    struct Deliveries: ResourceCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a webhook's delivery log, newest first: status, attempts, the last answer or error."
        )

        @OptionGroup(title: "Global options") var options: GlobalOptions

        @Argument(help: "The webhook id (whk…).")
        var webhook: WebhookID

        @Option(help: "Only pending, succeeded or failed deliveries.")
        var status: String?

        @Option(help: "At most this many deliveries (1…1000).")
        var limit: Int = 100

        func validate() throws {
            if let status, WebhookDelivery.Status(rawValue: status) == nil {
                throw ValidationError("--status must be pending, succeeded or failed")
            }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func answer(from client: PyAirtableClient) async throws -> [WebhookDelivery] {
            let status = self.status.flatMap(WebhookDelivery.Status.init(rawValue:))
            return try await client.webhooks.deliveries(of: webhook, status: status, pageSize: limit).data
        }
    }
}

extension Pyat.Webhooks.SwitchCommand {
    func answer(from client: PyAirtableClient) async throws -> Webhook {
        try await Self.enables ? client.webhooks.enable(webhook) : client.webhooks.disable(webhook)
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
