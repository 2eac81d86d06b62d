import Foundation
import PyAirtableClient
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import Testing

@Suite("pyat cache, and reads from the cache", .timeLimit(.minutes(15)))
struct CacheCommandsTests {
    /// Runs `pyat` against `url` with `token` and the given XDG directories.
    static func pyat(_ arguments: [String], url: String, token: String, home: URL) async throws -> PyatRun {
        var environment = ProcessInfo.processInfo.environment
        environment["PYAT_SERVER"] = url
        environment["PYAT_TOKEN"] = token
        environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
        environment["XDG_CACHE_HOME"] = home.appendingPathComponent("cache").path
        return try await PyatProcess.run(arguments, environment: environment)
    }

    @Test("records list and get answer from the cache with a notice when the server is down")
    func offlineReads() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-cli-cache-\(UUID())")
        defer { try? FileManager.default.removeItem(at: home) }
        let (url, token, tableID, recordID, online, onlineRecord) = try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let fixture = CLIFixture(server: server, demo: demo, configHome: home)
            let table = try await fixture.projectsTable()
            let list = try await Self.pyat(
                ["records", "list", table.id.rawValue, "--format", "json"],
                url: server.url,
                token: demo.token,
                home: home
            )
            #expect(list.status == 0, "\(list.stderr)")
            #expect(!list.stderr.contains("could not be reached"))
            let id = try #require(try list.jsonArray().first?["id"] as? String)
            let get = try await Self.pyat(["records", "get", id], url: server.url, token: demo.token, home: home)
            #expect(get.status == 0, "\(get.stderr)")
            return (server.url, demo.token, table.id.rawValue, id, list.stdout, get.stdout)
        }
        #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("cache/pyat/cache.sqlite").path))

        let list = try await Self.pyat(
            ["records", "list", tableID, "--format", "json"],
            url: url,
            token: token,
            home: home
        )
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout == online)
        #expect(list.stderr.contains("note: the server could not be reached"), "\(list.stderr)")
        #expect(list.stderr.split(separator: "\n").count == 1, "one line: \(list.stderr)")

        let get = try await Self.pyat(["records", "get", recordID], url: url, token: token, home: home)
        #expect(get.status == 0, "\(get.stderr)")
        #expect(get.stdout == onlineRecord)
        #expect(get.stderr.contains("showing cached record"), "\(get.stderr)")

        let offline = try await Self.pyat(
            ["records", "list", tableID, "--format", "json", "--offline"],
            url: url,
            token: token,
            home: home
        )
        #expect(offline.status == 0, "\(offline.stderr)")
        #expect(offline.stdout == online)
        #expect(offline.stderr.isEmpty, "--offline asked for the cache: \(offline.stderr)")

        let uncached = try await Self.pyat(
            ["records", "list", tableID, "--filter", "{Score} > 1"],
            url: url,
            token: token,
            home: home
        )
        #expect(uncached.status == 1)
        #expect(uncached.stderr.contains("cannot be reached"), "\(uncached.stderr)")

        let noCache = try await Self.pyat(
            ["records", "list", tableID, "--no-cache"],
            url: url,
            token: token,
            home: home
        )
        #expect(noCache.status == 1, "--no-cache does not read the cache")
    }

    @Test("a program and pyat processes share one cache file, both ways")
    func processesShareTheFile() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let tasks = try await fixture.demoTable(named: "Tasks")
            let time = Mutex(Date())
            var configuration = PyAirtableClient.Configuration(
                serverURL: try #require(URL(string: fixture.server.url)),
                credentials: .personalAccessToken(fixture.demo.token)
            )
            configuration.cache = .persistent(path: fixture.cacheHome.appendingPathComponent("pyat/cache.sqlite").path)
            configuration.cache.now = { time.withLock { $0 } }
            try await withPyAirtableClient(configuration: configuration) { client in
                let page = try await client.records.list(in: table.id)
                #expect(try await client.records.listWithSource(in: table.id).fromCache)

                // Another process reads what this one cached.
                let offline = try await fixture.pyat([
                    "records", "list", table.id.rawValue, "--offline", "--format", "json",
                ])
                #expect(offline.status == 0, "\(offline.stderr)")
                #expect(try offline.jsonArray().compactMap { $0["id"] as? String } == page.data.map(\.id.rawValue))

                // Another process invalidates; this one's memory tier notices.
                let invalidated = try await fixture.pyat(["cache", "invalidate", "--tag", "list:\(table.id)"])
                #expect(invalidated.status == 0, "\(invalidated.stderr)")
                time.withLock { $0.addTimeInterval(1) }
                #expect(try await !client.records.listWithSource(in: table.id).fromCache)

                // Two processes writing at once both land.
                async let first = fixture.pyat(["records", "list", tasks.id.rawValue, "--all", "--format", "json"])
                async let second = fixture.pyat(["records", "list", tasks.id.rawValue, "--format", "json"])
                let (one, two) = try await (first, second)
                #expect(one.status == 0, "\(one.stderr)")
                #expect(two.status == 0, "\(two.stderr)")
                time.withLock { $0.addTimeInterval(1) }
                #expect(try await client.records.listWithSource(in: tasks.id).fromCache, "written by a pyat process")
            }
        }
    }

    @Test("cache stats, invalidate and clear")
    func cacheCommands() async throws {
        try await CLIFixture.with { fixture in
            let table = try await fixture.projectsTable()
            let list = try await fixture.pyat(["records", "list", table.id.rawValue])
            #expect(list.status == 0, "\(list.stderr)")

            let stats = try await fixture.pyat(["cache", "stats", "--format", "json"])
            #expect(stats.status == 0, "\(stats.stderr)")
            let report = try stats.jsonObject()
            #expect((report["entries"] as? Int ?? 0) >= 2, "the page and the table schema: \(report)")
            #expect((report["file_bytes"] as? Int ?? 0) > 0)
            #expect((report["path"] as? String)?.hasPrefix(fixture.cacheHome.path) == true)

            let invalidated = try await fixture.pyat([
                "cache", "invalidate", "--tag", "records:\(table.id)", "--format", "json",
            ])
            #expect(invalidated.status == 0, "\(invalidated.stderr)")
            #expect(try invalidated.jsonObject()["removed"] as? Int == 1, "the page")

            let byPrefix = try await fixture.pyat([
                "cache", "invalidate", "--prefix", "/api/v1/tables/", "--format", "json",
            ])
            #expect(byPrefix.status == 0, "\(byPrefix.stderr)")
            #expect(try byPrefix.jsonObject()["removed"] as? Int == 1, "the schema")

            _ = try await fixture.pyat(["records", "list", table.id.rawValue])
            let cleared = try await fixture.pyat(["cache", "clear", "--format", "json"])
            #expect(cleared.status == 0, "\(cleared.stderr)")
            #expect((try cleared.jsonObject()["removed"] as? Int ?? 0) >= 2)
            let empty = try await fixture.pyat(["cache", "stats", "--format", "json"])
            #expect(try empty.jsonObject()["entries"] as? Int == 0)

            let usage = try await fixture.pyat(["cache", "invalidate"])
            #expect(usage.status == 2)
            #expect(usage.stderr.contains("--tag"), "\(usage.stderr)")
            let badTag = try await fixture.pyat(["cache", "invalidate", "--tag", "record:"])
            #expect(badTag.status == 2)
        }
    }
}
