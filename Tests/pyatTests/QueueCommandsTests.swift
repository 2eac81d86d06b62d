import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("pyat queue", .timeLimit(.minutes(15)))
struct QueueCommandsTests {
    @Test("a write with the server down exits 3 with the temporary id; replay applies it once")
    func queuedWriteAndReplay() async throws {
        let server = RestartableServer()
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-queue-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        do {
            let services = try await server.start()
            let demo = try await DemoData.seed(services: services)
            let workspace = try #require(demo.workspaceID)
            let configuration = PyAirtableClient.Configuration(
                serverURL: try #require(URL(string: server.url)),
                credentials: .personalAccessToken(demo.token)
            )
            let table = try await withPyAirtableClient(configuration: configuration) { client in
                let base = try #require(try await client.bases.list(in: workspace).first)
                return try #require(try await client.tables.list(in: base.id).first { $0.name == "Projects" })
            }
            var environment = ProcessInfo.processInfo.environment
            environment["PYAT_SERVER"] = server.url
            environment["PYAT_TOKEN"] = demo.token
            environment["XDG_CONFIG_HOME"] = home.path
            environment["XDG_CACHE_HOME"] = home.appendingPathComponent("cache").path
            let fixedEnvironment = environment
            let pyat: @Sendable ([String]) async throws -> PyatRun = { arguments in
                try await PyatProcess.run(arguments, environment: fixedEnvironment)
            }

            // The CLI types --field values by the table's fields: a read while online keeps them cached.
            let read = try await pyat(["records", "list", table.id.rawValue])
            #expect(read.status == 0, "\(read.stderr)")
            await server.stop()
            let created = try await pyat(["records", "create", table.id.rawValue, "--field", "Name=Queued in the CLI"])
            #expect(created.status == 3, "\(created.stderr)")
            #expect(created.stdout.hasPrefix("tmp_"), "\(created.stdout)")
            #expect(created.stderr.contains("queued offline"), "\(created.stderr)")
            let offline = try await pyat([
                "records", "create", table.id.rawValue, "--field", "Name=Queued on purpose", "--offline",
            ])
            #expect(offline.status == 3, "\(offline.stderr)")
            let listed = try await pyat(["queue", "list", "--format", "json"])
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(try listed.jsonArray().count == 2)

            try await server.start()
            let replay = try await pyat(["queue", "replay", "--format", "json"])
            #expect(replay.status == 0, "\(replay.stderr)")
            #expect(try replay.jsonObject()["replayed"] as? Int == 2)
            #expect(try await pyat(["queue", "list", "--format", "json"]).jsonArray().isEmpty)

            let records = try await withPyAirtableClient(configuration: configuration) { client in
                try await client.records.list(in: table.id).data
            }
            #expect(records.filter { $0.fields["Name"] == .string("Queued in the CLI") }.count == 1)
            #expect(records.filter { $0.fields["Name"] == .string("Queued on purpose") }.count == 1)
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }
}
