import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite("pyat webhooks", .timeLimit(.minutes(15)))
struct WebhookCommandsTests {
    @Test("create shows the secret once, list hides it, deliveries shows the log, delete removes the webhook")
    func lifecycle() async throws {
        try await WebhookReceiver.withRunning { receiver in
            try await CLIFixture.with { fixture in
                let table = try await fixture.projectsTable()
                let base = table.baseID.rawValue

                let human = try await fixture.pyat(["webhooks", "create", base, "--url", receiver.url])
                #expect(human.status == 0, "\(human.stderr)")
                #expect(human.stdout.contains("secret"))
                #expect(human.stdout.contains("shown only once"))

                let created = try await fixture.pyat([
                    "webhooks", "create", base, "--url", receiver.url, "--events", "record.created,record.updated",
                    "--table", table.id.rawValue, "--format", "json",
                ])
                #expect(created.status == 0, "\(created.stderr)")
                let object = try created.jsonObject()
                let id = try #require(object["id"] as? String)
                let secret = try #require(object["secret"] as? String)
                #expect(secret.count == 64)
                #expect(object["events"] as? [String] == ["record.created", "record.updated"])
                #expect(object["table_id"] as? String == table.id.rawValue)

                let listed = try await fixture.pyat(["webhooks", "list", base, "--format", "json"])
                #expect(listed.status == 0, "\(listed.stderr)")
                let hooks = try listed.jsonArray()
                #expect(hooks.count == 2)
                #expect(hooks.allSatisfy { $0["secret"] == nil })
                let tableOutput = try await fixture.pyat(["webhooks", "list", base])
                #expect(tableOutput.stdout.contains(id) && !tableOutput.stdout.contains(secret))

                try await fixture.withClient { client in
                    _ = try await client.records.create(in: table.id, fields: ["Name": "from the CLI test"])
                }
                let received = try await receiver.waitFor { list in
                    list.contains { $0.payload?.webhookID.rawValue == id }
                }
                let mine = try #require(received.first { $0.payload?.webhookID.rawValue == id })
                #expect(mine.verifies(secret: secret))

                var deliveries: [[String: Any]] = []
                let deadline = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < deadline {
                    let run = try await fixture.pyat(["webhooks", "deliveries", id, "--format", "json"])
                    #expect(run.status == 0, "\(run.stderr)")
                    deliveries = try run.jsonArray()
                    if deliveries.first?["status"] as? String == "succeeded" { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(deliveries.count == 1)
                #expect(deliveries.first?["id"] as? String == mine.deliveryID)
                #expect(deliveries.first?["attempts"] as? Int == 1)

                let deleted = try await fixture.pyat(["webhooks", "delete", id])
                #expect(deleted.status == 0, "\(deleted.stderr)")
                let after = try await fixture.pyat(["webhooks", "list", base, "--format", "json"])
                #expect(try after.jsonArray().count == 1)
            }
        }
    }

    @Test("bad arguments are usage errors; a refused URL is a failure with the server's reason")
    func refusals() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let badURL = try await fixture.pyat(["webhooks", "create", table.baseID.rawValue, "--url", "ftp://x"])
            #expect(badURL.status == 2)
            let badID = try await fixture.pyat(["webhooks", "delete", "not-an-id"])
            #expect(badID.status == 2)
            // Test servers allow private targets; an unknown event type is still refused by the server.
            let unknown = try await fixture.pyat([
                "webhooks", "create", table.baseID.rawValue, "--url", "http://127.0.0.1:9/hook", "--events",
                "record.exploded",
            ])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("record.exploded"))
        }
    }

    @Test("pyat serve --demo lets webhooks target loopback but not private networks")
    func serveDemoAllowsLoopbackOnly() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let child = try await ServeChild.start(dataDirectory: directory.path)
        let (process, server, token) = (child.process, child.server, child.token)
        var finished = false
        defer { if !finished { process.terminate() } }

        func call(_ method: String, _ path: String, _ body: String? = nil) async throws -> (Int, [String: Any]) {
            var request = URLRequest(url: try #require(URL(string: server + "/api/v1/" + path)))
            request.httpMethod = method
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            if let body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            let (data, response) = try await URLSession.shared.data(for: request)
            let object = (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
        }
        let workspaces = try await call("GET", "workspaces").1["data"] as? [[String: Any]]
        let workspace = try #require(workspaces?.first?["id"] as? String)
        let bases = try await call("GET", "workspaces/\(workspace)/bases").1["data"] as? [[String: Any]]
        let base = try #require(bases?.first?["id"] as? String)

        let loopback = try await call("POST", "bases/\(base)/webhooks", #"{"url": "http://127.0.0.1:9/hook"}"#)
        #expect(loopback.0 == 201)
        let privateNetwork = try await call("POST", "bases/\(base)/webhooks", #"{"url": "http://10.0.0.1/hook"}"#)
        #expect(privateNetwork.0 == 422)
        let message = (privateNetwork.1["error"] as? [String: Any])?["message"] as? String
        #expect(message?.contains("10.0.0.1") == true)

        process.terminate()
        #expect(await process.wait() == 0, "a graceful shutdown with the delivery worker running")
        finished = true
    }
}
