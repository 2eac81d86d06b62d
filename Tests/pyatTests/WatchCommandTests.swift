import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Testing

@Suite("pyat watch", .timeLimit(.minutes(15)))
struct WatchCommandTests {
    @Test("prints each event once, in seq order, across a server restart", arguments: ["auto", "sse", "poll"])
    func acrossRestart(transport: String) async throws {
        let server = RestartableServer()
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-watch-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        do {
            let services = try await server.start()
            let demo = try await DemoData.seed(services: services)
            var configuration = PyAirtableClient.Configuration(
                serverURL: try #require(URL(string: server.url)),
                credentials: .personalAccessToken(demo.token)
            )
            configuration.retry = RetryPolicy(maximumRetries: 0)
            try await withPyAirtableClient(configuration: configuration) { client in
                let workspace = try #require(demo.workspaceID)
                let base = try #require(try await client.bases.list(in: workspace).first)
                let table = try #require(try await client.tables.list(in: base.id).first { $0.name == "Projects" })
                let record = try #require(try await client.records.list(in: table.id).data.first)
                let since = try await client.realtime.latestSeq()

                var environment = ProcessInfo.processInfo.environment
                environment["PYAT_SERVER"] = server.url
                environment["PYAT_TOKEN"] = demo.token
                environment["XDG_CONFIG_HOME"] = home.path
                environment["XDG_CACHE_HOME"] = home.appendingPathComponent("cache").path
                let arguments = [
                    "watch", table.id.rawValue, "--since", String(since), "--transport", transport, "--count", "6",
                    "--format", "ndjson",
                ]
                // A child task of this test: if anything below throws, or the test runs past its time
                // limit, the run is cancelled and the watcher killed.
                async let watcher = PyatProcess.run(arguments, environment: environment)

                for index in 1...3 {
                    _ = try await client.records.update(record.id, fields: ["Score": .number(Double(index))])
                }
                await server.stop()
                try await server.start()
                for index in 4...6 {
                    _ = try await client.records.update(record.id, fields: ["Score": .number(Double(index))])
                }
                let run = try await watcher
                #expect(run.status == 0, "\(run.stderr)")
                let events = try run.stdoutLines.map {
                    try JSONCoding.decoder.decode(Event.self, from: Data($0.utf8))
                }
                #expect(events.count == 6)
                #expect(events.map(\.seq) == events.map(\.seq).sorted())
                #expect(Set(events.map(\.seq)).count == 6)
                #expect(events.compactMap { $0.payload["fields"]?["Score"]?.numberValue } == [1, 2, 3, 4, 5, 6])
            }
        } catch {
            await server.remove()
            throw error
        }
        await server.remove()
    }

    @Test("json and csv are refused: watch prints a line per event")
    func formats() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let run = try await fixture.pyat(["watch", table.id.rawValue, "--format", "json"])
            #expect(run.status == 2)
            #expect(run.stderr.contains("ndjson"), "\(run.stderr)")
        }
    }
}
