import Foundation
import GRDB
import HTTPTypes
import PyAirtableModels
import ReferenceServerTesting
import TestSupport
import Testing

@testable import ReferenceServer

/// Who sees webhooks, and on whose access a webhook delivers.
@Suite("Webhooks: visibility by role and the creator's access", .timeLimit(.minutes(15)))
struct WebhookAccessTests {
    @Test(
        "editors, commenters and viewers get 403 on every webhook route; the events they read carry no URL",
        arguments: [Role.editor, .commenter, .viewer]
    )
    func belowCreatorSeesNoWebhook(role: Role) async throws {
        let directory = try TemporaryDirectory()
        try await WebhookTests.withServer(directory: directory.path, worker: false) { api, _ in
            let (owner, _) = try await api.register("Owner")
            let (member, memberUser) = try await api.register("Member")
            let (workspace, base, table) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: memberUser.id, role: role)
            let url = "http://127.0.0.1:9/private-receiver-path"
            let hook = try await WebhookTests.createHook(owner, base: base.id, url: url, events: [.recordCreated])
            let secret = try #require(hook.secret)
            _ = try await owner.createRecord(in: table.id, ["Name": "delivered to nobody"])
            _ = try await owner.call(
                .patch,
                "webhooks/\(hook.id)",
                json: UpdateWebhookRequest(enabled: false),
                as: Webhook.self
            )

            for path in ["bases/\(base.id)/webhooks", "webhooks/\(hook.id)", "webhooks/\(hook.id)/deliveries"] {
                let response = try await member.send(.get, path)
                expectError(response, .forbidden, .forbidden, "\(role) GET \(path)")
                #expect(!response.text.contains("private-receiver-path") && !response.text.contains(secret))
            }
            // The same routes answer a creator or owner, URL included.
            let listed = try await owner.call(.get, "bases/\(base.id)/webhooks", as: Page<Webhook>.self).data
            #expect(listed.map(\.url) == [url])

            let log = try await member.send(.get, "events/log?since=0&limit=1000")
            #expect(log.status == .ok)
            let events = try log.decode(EventLogPage.self).data
            let webhookEvents = events.filter { $0.type == .webhookCreated || $0.type == .webhookUpdated }
            #expect(webhookEvents.count == 2, "the member still learns that webhooks changed")
            #expect(!log.text.contains("private-receiver-path"), "no webhook URL in the events a \(role) reads")
            #expect(!log.text.contains(secret) && !log.text.contains("disabled_reason"))
        }
    }

    @Test(
        "a webhook whose creator is removed from the workspace stops delivering, says why, and resumes when re-enabled"
    )
    func creatorRemovedStopsDeliveries() async throws {
        try await WebhookReceiver.withRunning { receiver in
            try await WebhookTests.withServer { api, _ in
                let (owner, _) = try await api.register("Owner")
                let (creator, creatorUser) = try await api.register("Creator")
                let (workspace, base, table) = try await owner.scaffold()
                try await owner.addMember(workspace.id, user: creatorUser.id, role: .creator)
                let hook = try await WebhookTests.createHook(
                    creator,
                    base: base.id,
                    url: receiver.url + "?hook=creator",
                    events: [.recordCreated]
                )
                // The owner's own webhook shows when the worker has handled an event.
                _ = try await WebhookTests.createHook(
                    owner,
                    base: base.id,
                    url: receiver.url + "?hook=control",
                    events: [.recordCreated]
                )
                let first = try await owner.createRecord(in: table.id, ["Name": "before"])
                try await receiver.waitFor { $0.count >= 2 }
                #expect(receiver.deliveries.allSatisfy { $0.payload?.event.recordID == first.id })

                let removal = try await owner.send(.delete, "workspaces/\(workspace.id)/members/\(creatorUser.id)")
                #expect(removal.status == .noContent)
                let disabled = try await owner.call(.get, "webhooks/\(hook.id)", as: Webhook.self)
                #expect(!disabled.enabled)
                #expect(disabled.disabledReason?.contains("removed from the workspace") == true, "\(disabled)")
                expectError(try await creator.send(.get, "webhooks/\(hook.id)"), .notFound, .notFound)

                let second = try await owner.createRecord(in: table.id, ["Name": "after"])
                // The control webhook got the second event, so the worker has handed it over: the
                // creator's webhook, disabled in the removal's transaction, was passed by.
                try await receiver.waitFor { $0.contains { $0.payload?.event.recordID == second.id } }
                let creatorLog = try await owner.call(
                    .get,
                    "webhooks/\(hook.id)/deliveries",
                    as: Page<WebhookDelivery>.self
                ).data
                #expect(creatorLog.count == 1 && creatorLog.first?.status == .succeeded, "\(creatorLog)")
                let afterRemoval = receiver.deliveries.filter {
                    $0.payload?.webhookID == hook.id && $0.payload?.event.recordID == second.id
                }
                #expect(afterRemoval.isEmpty, "nothing went out for the removed creator's webhook")

                // An owner turns it back on and becomes responsible: the held-back event goes out.
                let enabled = try await owner.call(
                    .patch,
                    "webhooks/\(hook.id)",
                    json: UpdateWebhookRequest(enabled: true),
                    as: Webhook.self
                )
                #expect(enabled.enabled && enabled.disabledReason == nil)
                try await receiver.waitFor {
                    $0.contains { $0.payload?.webhookID == hook.id && $0.payload?.event.recordID == second.id }
                }
            }
        }
    }

    @Test("a creator's webhooks stop when their role drops below creator or they leave; others' go on")
    func roleLoweredOrLeft() async throws {
        let directory = try TemporaryDirectory()
        try await WebhookTests.withServer(directory: directory.path, worker: false) { api, services in
            let (owner, _) = try await api.register("Owner")
            let (first, firstUser) = try await api.register("First")
            let (second, secondUser) = try await api.register("Second")
            let (workspace, base, _) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: firstUser.id, role: .creator)
            try await owner.addMember(workspace.id, user: secondUser.id, role: .creator)
            let url = "http://127.0.0.1:9/hook"
            let firstHook = try await WebhookTests.createHook(first, base: base.id, url: url)
            let secondHook = try await WebhookTests.createHook(second, base: base.id, url: url)
            func fetch(_ id: WebhookID) async throws -> Webhook {
                try await owner.call(.get, "webhooks/\(id)", as: Webhook.self)
            }

            _ = try await owner.call(
                .patch,
                "workspaces/\(workspace.id)/members/\(firstUser.id)",
                json: UpdateMemberRequest(role: .editor),
                as: Member.self
            )
            let lowered = try await fetch(firstHook.id)
            #expect(!lowered.enabled)
            #expect(lowered.disabledReason?.contains("is now editor") == true, "\(lowered)")
            #expect(try await fetch(secondHook.id).enabled, "another creator's webhook goes on")

            // Getting the role back does not turn it on by itself; its creator may.
            _ = try await owner.call(
                .patch,
                "workspaces/\(workspace.id)/members/\(firstUser.id)",
                json: UpdateMemberRequest(role: .creator),
                as: Member.self
            )
            #expect(!(try await fetch(firstHook.id).enabled))
            let reenabled = try await first.call(
                .patch,
                "webhooks/\(firstHook.id)",
                json: UpdateWebhookRequest(enabled: true),
                as: Webhook.self
            )
            #expect(reenabled.enabled)

            let left = try await second.send(.delete, "workspaces/\(workspace.id)/members/\(secondUser.id)")
            #expect(left.status == .noContent)
            let leftHook = try await fetch(secondHook.id)
            #expect(!leftHook.enabled && leftHook.disabledReason?.contains("left the workspace") == true, "\(leftHook)")
            #expect(try await fetch(firstHook.id).enabled)

            // Nothing is pending for a disabled webhook: the worker's read finds no work for it.
            let work = try await services.store.webhookWork(now: Date())
            #expect(!work.due.contains { $0.webhookID == secondHook.id })

            // Deleting the base deletes its webhooks.
            #expect(try await owner.send(.delete, "bases/\(base.id)").status == .noContent)
            expectError(try await owner.send(.get, "webhooks/\(firstHook.id)"), .notFound, .notFound)
        }
    }

    @Test(
        "an existing database is brought in line: webhooks of creators who lost the role stop, stored events lose URLs"
    )
    func migrationOfExistingData() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path
        let (token, hookID) = try await WebhookTests.withServer(directory: path, worker: false) { api, services in
            let (owner, _) = try await api.register("Owner")
            let (creator, creatorUser) = try await api.register("Creator")
            let (workspace, base, _) = try await owner.scaffold()
            try await owner.addMember(workspace.id, user: creatorUser.id, role: .creator)
            let hook = try await WebhookTests.createHook(creator, base: base.id, url: "http://127.0.0.1:9/old-hook")
            #expect(
                try await owner.send(.delete, "workspaces/\(workspace.id)/members/\(creatorUser.id)").status
                    == .noContent
            )
            // Put the data back as the code before this change left it: the hook still on, the URL
            // in its creation event, and the migration not yet applied.
            let pool = try #require(services.store as? SQLiteStore).database.pool
            try await pool.write { db in
                try db.execute(sql: "UPDATE webhooks SET enabled = 1, disabled_reason = NULL")
                try db.execute(
                    sql: """
                        UPDATE events SET payload = json_set(payload, '$.url', 'http://127.0.0.1:9/old-hook')
                        WHERE type = 'webhook.created'
                        """
                )
                try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v5-webhook-access'")
            }
            return (try #require(owner.token), hook.id)
        }
        try await WebhookTests.withServer(directory: path, worker: false) { api, _ in
            let owner = api.authorized(token)
            let hook = try await owner.call(.get, "webhooks/\(hookID)", as: Webhook.self)
            #expect(!hook.enabled)
            #expect(hook.disabledReason?.contains("no longer has the creator role") == true, "\(hook)")
            let log = try await owner.send(.get, "events/log?since=0&limit=1000")
            #expect(log.status == .ok && !log.text.contains("old-hook"))
        }
    }
}
