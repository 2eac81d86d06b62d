import Foundation
import HTTPTypes
import PyAirtableClient
import PyAirtableModels
import PyAirtableTesting
import ReferenceServer
import ReferenceServerTesting
import Synchronization
import Testing

/// Records what reached the server: each request's path, `If-None-Match`, and the answer's status
/// and body size.
final class WireLog: ClientMiddleware {
    struct Exchange: Sendable {
        var method: HTTPRequest.Method
        var path: String
        var ifNoneMatch: String?
        var status: Int
        var bodyBytes: Int
    }

    private let exchanges = Mutex<[Exchange]>([])

    var all: [Exchange] { exchanges.withLock { $0 } }
    var count: Int { exchanges.withLock { $0.count } }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        // The body may still be arriving: read it here, and pass on the bytes.
        let response = try await next(request).collected(upTo: 64 * 1024 * 1024)
        let bodyBytes = try await response.body?.collect(upTo: 64 * 1024 * 1024).count ?? 0
        exchanges.withLock {
            $0.append(
                Exchange(
                    method: request.method,
                    path: request.path,
                    ifNoneMatch: request.headerFields[.ifNoneMatch],
                    status: response.status.code,
                    bodyBytes: bodyBytes
                )
            )
        }
        return response
    }
}

/// A cache file in a throwaway directory, a wall clock the test moves, and clients sharing both.
struct CacheFixture: Sendable {
    let directory: URL
    let time = ServerTime()
    var path: String { directory.appendingPathComponent("cache.sqlite").path }

    static func with<T: Sendable>(_ body: @Sendable (CacheFixture) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-sdkcache-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(CacheFixture(directory: directory))
    }

    /// A cache fixture, a running server with demo data, and a caching client of the demo user whose
    /// traffic `log` records.
    static func withDemo(
        _ body: @Sendable (CacheFixture, TestServer, DemoCredentials, WireLog, PyAirtableClient) async throws -> Void
    ) async throws {
        try await with { cache in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                let log = WireLog()
                try await cache.withClient(url: server.url, token: demo.token, log: log) { client in
                    try await body(cache, server, demo, log, client)
                }
            }
        }
    }

    var settings: PyAirtableClient.CacheSettings {
        var settings = PyAirtableClient.CacheSettings.persistent(path: path)
        settings.now = { [time] in time.now() }
        return settings
    }

    /// A caching client of `url` with `token`, logging its wire traffic to `log`; no retries, so an
    /// unreachable server fails at once.
    func withClient<T: Sendable>(
        url: String,
        token: String?,
        log: WireLog = WireLog(),
        configure: (inout PyAirtableClient.Configuration) -> Void = { _ in },
        _ body: (PyAirtableClient) async throws -> T
    ) async throws -> T {
        var configuration = PyAirtableClient.Configuration(
            serverURL: URL(string: url)!,
            credentials: token.map { .personalAccessToken($0) } ?? .none,
            retry: RetryPolicy(maximumRetries: 0),
            circuitBreaker: .disabled,
            clock: TestClock(),
            middlewares: [log],
            cache: settings
        )
        configure(&configuration)
        return try await withPyAirtableClient(configuration: configuration, body)
    }
}

@Suite("The SDK's cache against the real server", .timeLimit(.minutes(15)))
struct CacheIntegrationTests {
    /// The demo Projects table and its records.
    static func projects(_ client: PyAirtableClient, workspace: WorkspaceID) async throws -> Table {
        let base = try #require(try await client.bases.list(in: workspace, policy: .networkOnly).first)
        return try #require(
            try await client.tables.list(in: base.id, policy: .networkOnly).first { $0.name == "Projects" }
        )
    }

    @Test("a record page is served from the cache for 2 minutes, then revalidated with a bodiless 304")
    func recordsRuleAndRevalidation() async throws {
        try await CacheFixture.withDemo { cache, server, demo, log, client in
            let table = try await Self.projects(client, workspace: try #require(demo.workspaceID))
            let before = log.count

            let first = try await client.records.listWithSource(in: table.id)
            #expect(!first.fromCache)
            #expect(first.value.data.count == 8)
            #expect(log.count == before + 1)

            let second = try await client.records.listWithSource(in: table.id)
            #expect(second.fromCache)
            #expect(!second.isStale)
            #expect(second.value.data.map(\.id) == first.value.data.map(\.id))
            #expect(log.count == before + 1, "a fresh page is answered without a request")

            cache.time.advance(by: 121)
            let third = try await client.records.listWithSource(in: table.id)
            #expect(!third.fromCache)
            #expect(third.value.data.map(\.id) == first.value.data.map(\.id))
            let revalidation = try #require(log.all.last)
            #expect(revalidation.ifNoneMatch?.hasPrefix("W/\"") == true)
            #expect(revalidation.status == 304)
            #expect(revalidation.bodyBytes == 0)

            // Changed elsewhere: the next revalidation gets the new page and a new ETag.
            let changed = try #require(first.value.data.first)
            _ = try await cache.withClient(
                url: server.url,
                token: demo.token,
                configure: { $0.cache = .disabled }
            ) {
                try await $0.records.update(changed.id, fields: ["Name": .string("Changed elsewhere")]).get()
            }
            cache.time.advance(by: 121)
            let fourth = try await client.records.listWithSource(in: table.id)
            #expect(!fourth.fromCache)
            #expect(
                fourth.value.data.first { $0.id == changed.id }?.fields["Name"] == .string("Changed elsewhere")
            )
            #expect(log.all.last?.status == 200)
            #expect(log.all.last?.ifNoneMatch == revalidation.ifNoneMatch)

            let statistics = try #require(await client.cache.statistics())
            #expect(statistics.memoryHits >= 1)
        }
    }

    @Test("single resources revalidate with their version ETag")
    func recordRevalidation() async throws {
        try await CacheFixture.withDemo { cache, server, demo, log, client in
            let table = try await Self.projects(client, workspace: try #require(demo.workspaceID))
            let id = try #require(try await client.records.list(in: table.id).data.first?.id)
            let record = try await client.records.get(id)
            let again = try await client.records.getWithSource(id, policy: .networkFirst)
            #expect(again.value == record)
            #expect(log.all.last?.ifNoneMatch == VersionTag.format(record.version))
            #expect(log.all.last?.status == 304)
        }
    }

    @Test("a write invalidates the lists containing the record, and keeps unrelated entries")
    func writesInvalidate() async throws {
        try await CacheFixture.withDemo { cache, server, demo, log, client in
            let workspace = try #require(demo.workspaceID)
            let projects = try await Self.projects(client, workspace: workspace)
            let base = try #require(try await client.bases.list(in: workspace).first)
            let tasks = try #require(try await client.tables.list(in: base.id).first { $0.name == "Tasks" })

            let all = try await client.records.list(in: projects.id)
            let victim = try #require(all.data.first)
            let survivorsQuery = RecordQuery(filter: "RECORD_ID() != '\(victim.id)'")
            let survivors = try await client.records.list(in: projects.id, query: survivorsQuery)
            #expect(!survivors.data.contains { $0.id == victim.id })
            let firstPage = RecordQuery(pageSize: 1)
            let onlyVictim = try await client.records.list(in: projects.id, query: firstPage)
            #expect(onlyVictim.data.map(\.id) == [victim.id])
            _ = try await client.records.list(in: tasks.id)
            let other = try #require(all.data.last)
            _ = try await client.records.get(other.id)

            try await client.records.delete(victim.id)

            // Both pages showing the record went; the page without it, the other table's
            // page and the other record stayed.
            let requests = log.count
            #expect(try await client.records.listWithSource(in: projects.id, query: survivorsQuery).fromCache)
            #expect(try await client.records.listWithSource(in: tasks.id).fromCache)
            #expect(try await client.records.getWithSource(other.id).fromCache)
            #expect(log.count == requests)
            let reloaded = try await client.records.listWithSource(in: projects.id)
            #expect(!reloaded.fromCache)
            #expect(!reloaded.value.data.contains { $0.id == victim.id })
            #expect(try await !client.records.listWithSource(in: projects.id, query: firstPage).fromCache)

            // An update keeps the record's own entry current and drops the table's lists,
            // since the change could move the record into any filtered list.
            let updated = try await client.records.update(other.id, fields: ["Score": .number(99)]).get()
            let read = try await client.records.getWithSource(other.id)
            #expect(read.fromCache)
            #expect(read.value == updated)
            #expect(try await !client.records.listWithSource(in: projects.id, query: survivorsQuery).fromCache)
            #expect(try await client.records.listWithSource(in: tasks.id).fromCache)

            // A created record shows in the next read of the table's lists.
            let created = try await client.records.create(in: projects.id, fields: ["Name": .string("New")]).get()
            let withCreated = try await client.records.listWithSource(in: projects.id)
            #expect(!withCreated.fromCache)
            #expect(withCreated.value.data.contains { $0.id == created.id })

            // A field change drops the schema and the table's records.
            _ = try await client.tables.get(projects.id)
            let schema = try await client.tables.getWithSource(projects.id)
            #expect(schema.fromCache)
            _ = try await client.fields.create(
                in: projects.id,
                field: CreateFieldRequest(name: "Notes", type: .multilineText)
            )
            let newSchema = try await client.tables.getWithSource(projects.id)
            #expect(!newSchema.fromCache)
            #expect(newSchema.value.fields.contains { $0.name == "Notes" })
            #expect(try await !client.records.getWithSource(other.id).fromCache)
        }
    }

    @Test("with the server stopped, reads answer from the cache and say so")
    func offlineReads() async throws {
        try await CacheFixture.with { cache in
            let (url, token, table, record, me) = try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                return try await cache.withClient(url: server.url, token: demo.token) { client in
                    let table = try await Self.projects(client, workspace: try #require(demo.workspaceID))
                    let page = try await client.records.list(in: table.id)
                    let record = try await client.records.get(try #require(page.data.first?.id))
                    _ = try await client.tables.get(table.id)
                    let me = try await client.users.me()
                    return (server.url, demo.token, table, record, me)
                }
            }
            cache.time.advance(by: 3600)
            try await cache.withClient(url: url, token: token) { client in
                let page = try await client.records.listWithSource(in: table.id)
                #expect(page.fromCache)
                #expect(page.isOffline)
                #expect(page.isStale)
                #expect(page.networkError == .transportFailure)
                #expect(page.value.data.count == 8)

                let single = try await client.records.getWithSource(record.id)
                #expect(single.isOffline)
                #expect(single.value == record)
                #expect(try await client.users.meWithSource().value == me)
                #expect(try await client.tables.get(table.id).id == table.id)

                // Nothing cached for this query: the network error comes through.
                await #expect(throws: PyAirtableError.transportFailure) {
                    try await client.records.list(in: table.id, query: RecordQuery(filter: "{Score} > 1"))
                }
                await #expect(throws: PyAirtableError.notCached) {
                    try await client.records.list(in: table.id, query: RecordQuery(pageSize: 3), policy: .cacheOnly)
                }
            }
        }
    }

    @Test("a 404 is not papered over: the held entry is dropped")
    func notFoundDropsEntry() async throws {
        try await CacheFixture.with { cache in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                try await cache.withClient(url: server.url, token: demo.token) { client in
                    let table = try await Self.projects(client, workspace: try #require(demo.workspaceID))
                    let id = try #require(try await client.records.list(in: table.id).data.first?.id)
                    _ = try await client.records.get(id)
                    // Deleted by someone else: this client's cache does not know.
                    _ = try await cache.withClient(
                        url: server.url,
                        token: demo.token,
                        configure: { $0.cache = .disabled }
                    ) {
                        try await $0.records.delete(id).get()
                    }
                    #expect(try await client.records.getWithSource(id).fromCache)
                    await #expect(throws: PyAirtableError.notFound) {
                        try await client.records.get(id, policy: .networkFirst)
                    }
                    await #expect(throws: PyAirtableError.notCached) {
                        try await client.records.get(id, policy: .cacheOnly)
                    }
                }
            }
        }
    }

    @Test("two users sharing one cache file never see each other's entries")
    func usersAreSeparate() async throws {
        try await CacheFixture.with { cache in
            try await TestServer.withRunning { server in
                let demo = try await server.seedDemo()
                let demoLog = WireLog()
                let (workspaces, recordID, token) = try await cache.withClient(
                    url: server.url,
                    token: demo.token,
                    log: demoLog
                ) {
                    client in
                    let table = try await Self.projects(client, workspace: try #require(demo.workspaceID))
                    let id = try #require(try await client.records.list(in: table.id).data.first?.id)
                    _ = try await client.records.get(id)
                    return (try await client.workspaces.list(), id, demo.token)
                }
                #expect(!workspaces.isEmpty)

                let otherLog = WireLog()
                try await cache.withClient(
                    url: server.url,
                    token: nil,
                    log: otherLog,
                    configure: { $0.credentials = .store(InMemoryTokenStore()) }
                ) { client in
                    let email = "eve-\(UUID().uuidString.prefix(6).lowercased())@example.com"
                    _ = try await client.auth.register(email: email, password: "correct horse", name: "Eve")
                    let before = otherLog.count
                    let theirs = try await client.workspaces.listWithSource()
                    #expect(!theirs.fromCache)
                    #expect(otherLog.count == before + 1)
                    #expect(Set(theirs.value.map(\.id)).isDisjoint(with: workspaces.map(\.id)))
                    await #expect(throws: PyAirtableError.notCached) {
                        try await client.records.get(recordID, policy: .cacheOnly)
                    }
                    await #expect(throws: PyAirtableError.notFound) { try await client.records.get(recordID) }
                }
                // The demo user's entries are still there for them.
                try await cache.withClient(url: server.url, token: demo.token) { client in
                    let hit = try await client.records.getWithSource(recordID, policy: .cacheOnly)
                    #expect(hit.fromCache)
                }
                // The file names accounts by user id or token digest, never by the token itself.
                var bytes = try Data(contentsOf: URL(fileURLWithPath: cache.path))
                bytes += (try? Data(contentsOf: URL(fileURLWithPath: cache.path + "-wal"))) ?? Data()
                #expect(!bytes.isEmpty)
                #expect(bytes.range(of: Data(token.utf8)) == nil)
            }
        }
    }

    @Test("stale-while-revalidate answers at once and refreshes in the background")
    func staleWhileRevalidate() async throws {
        try await CacheFixture.withDemo { cache, server, demo, log, client in
            let me = try await client.users.me()
            // Renamed elsewhere.
            try await cache.withClient(url: server.url, token: demo.token, configure: { $0.cache = .disabled }) {
                _ = try await $0.users.update(name: "Renamed")
            }
            cache.time.advance(by: 14 * 60)
            #expect(try await client.users.meWithSource().value.name == me.name)

            cache.time.advance(by: 2 * 60)
            let stale = try await client.users.meWithSource()
            #expect(stale.fromCache)
            #expect(stale.isStale)
            #expect(stale.value.name == me.name)
            let engine = try #require(await client.cache.engine())
            await engine.waitForRevalidations()
            let fresh = try await client.users.meWithSource()
            #expect(fresh.fromCache)
            #expect(!fresh.isStale)
            #expect(fresh.value.name == "Renamed")
        }
    }

    @Test("per-call policies: networkOnly always asks and keeps the answer; cacheOnly never asks")
    func policies() async throws {
        try await CacheFixture.withDemo { cache, server, demo, log, client in
            await #expect(throws: PyAirtableError.notCached) {
                try await client.workspaces.list(policy: .cacheOnly)
            }
            #expect(log.count == 0)
            _ = try await client.workspaces.list(policy: .networkOnly)
            _ = try await client.workspaces.list(policy: .networkOnly)
            #expect(log.count == 2)
            #expect(try await client.workspaces.listWithSource(policy: .cacheOnly).fromCache)
            #expect(log.count == 2)

            #expect(try await client.cache.invalidate(tags: ["workspaces"]) == 1)
            await #expect(throws: PyAirtableError.notCached) {
                try await client.workspaces.list(policy: .cacheOnly)
            }
            _ = try await client.workspaces.list()
            #expect(try await client.cache.invalidate(keyPrefix: "/api/v1/workspaces") == 1)
            _ = try await client.users.me()
            #expect(try await client.cache.clear() >= 1)
            await #expect(throws: PyAirtableError.notCached) { try await client.users.me(policy: .cacheOnly) }
        }
    }

    @Test("with the cache off every read goes to the server")
    func disabled() async throws {
        try await TestServer.withRunning { server in
            let demo = try await server.seedDemo()
            let log = WireLog()
            var configuration = PyAirtableClient.Configuration(
                serverURL: URL(string: server.url)!,
                credentials: .personalAccessToken(demo.token),
                middlewares: [log]
            )
            configuration.cache = .disabled
            try await withPyAirtableClient(configuration: configuration) { client in
                _ = try await client.users.me()
                let answer = try await client.users.meWithSource()
                #expect(!answer.fromCache)
                #expect(log.count == 2)
                #expect(await client.cache.statistics() == nil)
                await #expect(throws: PyAirtableError.notCached) { try await client.users.me(policy: .cacheOnly) }
            }
        }
    }
}
