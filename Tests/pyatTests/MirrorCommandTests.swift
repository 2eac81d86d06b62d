import Foundation
import PyAirtableClient
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting
import TestSupport
import Testing

/// `pyat serve --mirror` as a user runs it: a child process mirroring a base of another server, and
/// `pyat mirror status|refresh` against it.
@Suite("pyat mirror", .timeLimit(.minutes(5)))
struct MirrorCommandTests {
    @Test(
        "serve --mirror keeps another server's base, read-only; mirror refresh --wait and status report it; the token is never logged"
    )
    func mirrorCommands() async throws {
        try await CLIFixture.with { upstream in
            let projects = try await upstream.projectsTable()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "pyat-mirror-\(UUID().uuidString)"
            )
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let logPath = directory.appendingPathComponent("serve.log").path
            let child = try await ServeChild.start(
                dataDirectory: directory.appendingPathComponent("data").path,
                logLevel: "debug",
                stderrPath: logPath,
                options: ["--mirror", upstream.server.url, "--mirror-base", projects.baseID.rawValue],
                environment: ["PYAT_MIRROR_TOKEN": upstream.demo.token]
            )
            var finished = false
            defer { if !finished { child.process.kill() } }
            var environment = ProcessInfo.processInfo.environment
            environment["PYAT_SERVER"] = child.server
            environment["PYAT_TOKEN"] = child.token
            environment["XDG_CONFIG_HOME"] = upstream.configHome.path
            environment["XDG_CACHE_HOME"] = upstream.cacheHome.path

            let refreshed = try await PyatProcess.run(
                ["mirror", "refresh", "--wait", "--timeout", "120", "--format", "json"],
                environment: environment
            )
            #expect(refreshed.status == 0, "\(refreshed.stderr)")
            let status = try refreshed.jsonObject()
            let bases = try #require(status["bases"] as? [[String: Any]])
            #expect(bases.count == 1)
            let base = try #require(bases.first)
            #expect(base["base_id"] as? String == projects.baseID.rawValue)
            #expect((base["last_sync"] as? [String: Any])?["outcome"] as? String == "ok", "\(base)")
            let snapshot = try #require(base["snapshot"] as? [String: Any])
            #expect(snapshot["records"] as? Int == 28)

            let table = try await PyatProcess.run(["mirror", "status"], environment: environment)
            #expect(table.status == 0, "\(table.stderr)")
            #expect(table.stdout.contains(projects.baseID.rawValue) && table.stdout.contains("ok"))

            // The mirror answers with the upstream's records, and refuses writes.
            let url = try #require(URL(string: child.server))
            try await withPyAirtableClient(
                configuration: .init(serverURL: url, credentials: .personalAccessToken(child.token))
            ) { client in
                let records = try await client.records.list(in: projects.id)
                #expect(records.data.count == 8)
                let first = try #require(records.data.first)
                await #expect(throws: PyAirtableError.self) {
                    try await client.records.update(first.id, fields: ["Name": "changed"])
                }
            }

            child.process.terminate()
            #expect(await child.process.wait() == 0)
            finished = true
            let log = try String(contentsOfFile: logPath, encoding: .utf8)
            #expect(log.contains("mirrored a base"))
            #expect(!log.contains(upstream.demo.token), "the upstream's token is in the log")
        }
    }
}
