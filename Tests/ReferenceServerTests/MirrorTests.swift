import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import PyAirtableModels
import ReferenceServerTesting
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import ReferenceServer

/// Mirror mode against a real upstream: another reference server on a real socket, reached through
/// its Airtable API v0 (directly, or through a proxy that fails on command: the transport failing is
/// the point of those tests).
// Each test syncs hundreds to thousands of records between two servers: they take turns with the
// other tests that load the machine (the limit counts the wait for a turn).
@Suite("Mirror mode: a live, verified copy of an upstream base", .timeLimit(.minutes(15)), .heavy)
struct MirrorTests {
    // MARK: The upstream

    /// A base upstream: People (Name) and Tasks with every field type this mirror stores, plus an
    /// attachments field it skips.
    struct Upstream {
        var api: API
        var token: String
        var base: BaseID
        var tasks: PyAirtableModels.Table
        var people: PyAirtableModels.Table
        var url: String
    }

    static func makeUpstream(_ api: API, port: Int, tasks count: Int) async throws -> Upstream {
        let (client, _) = try await api.register("Upstream")
        let workspace = try await client.createWorkspace()
        let base = try await client.createBase(in: workspace.id, "Projects")
        let people = try await client.createTable(
            in: base.id,
            "People",
            fields: [.init(name: "Name", type: .singleLineText)]
        )
        let tasks = try await client.createTable(
            in: base.id,
            "Tasks",
            fields: [
                .init(name: "Name", type: .singleLineText),
                .init(name: "Notes", type: .multilineText),
                .init(name: "Score", type: .number, options: .init(precision: 2)),
                .init(name: "Done", type: .checkbox),
                .init(
                    name: "Status",
                    type: .singleSelect,
                    options: .init(
                        choices: ["Todo", "Doing", "Done"].map { SelectChoice(name: $0, color: "blueLight2") }
                    )
                ),
                .init(
                    name: "Tags",
                    type: .multipleSelects,
                    options: .init(choices: ["a", "b", "c"].map { SelectChoice(name: $0) })
                ),
                .init(name: "Due", type: .date),
                .init(name: "At", type: .dateTime),
                .init(name: "Email", type: .email),
                .init(name: "Site", type: .url),
                .init(name: "Owner", type: .multipleRecordLinks, options: .init(linkedTableID: people.id)),
                .init(name: "Files", type: .multipleAttachments),
            ]
        )
        var personIDs: [RecordID] = []
        let people0 = (0..<20).map { BatchOperation.create(fields: ["Name": .string("Person \($0)")]) }
        for result in try await client.call(
            .post,
            "tables/\(people.id)/records/batch",
            json: BatchRequest(operations: people0),
            as: BatchResponse.self
        ).results {
            if case .record(let record) = result { personIDs.append(record.id) }
        }
        var index = 0
        while index < count {
            let operations = (index..<min(count, index + 100)).map { n -> BatchOperation in
                var fields: [String: FieldValue] = [
                    "Name": .string("Task \(n)"),
                    "Score": .number(Double(n) / 4),
                    "Status": .string(["Todo", "Doing", "Done"][n % 3]),
                    "Due": .string("2026-12-\(String(format: "%02d", n % 28 + 1))"),
                ]
                if n % 2 == 0 { fields["Done"] = .bool(true) }
                if n % 5 == 0 { fields["Notes"] = .string("line one\nline \(n) <script>alert(1)</script> ✓") }
                if n % 7 == 0 { fields["Tags"] = .strings(["a", "c"]) }
                if n % 3 == 0 { fields["At"] = .string("2026-12-08T10:\(String(format: "%02d", n % 60)):00.000Z") }
                if n % 4 == 0 { fields["Email"] = .string("t\(n)@example.com") }
                if n % 6 == 0 { fields["Site"] = .string("https://example.com/\(n)") }
                if n % 2 == 1 { fields["Owner"] = .strings([personIDs[n % personIDs.count].rawValue]) }
                return .create(fields: fields)
            }
            try await client.send(.post, "tables/\(tasks.id)/records/batch", json: BatchRequest(operations: operations))
            index += 100
        }
        return Upstream(
            api: client,
            token: try #require(client.token),
            base: base.id,
            tasks: tasks,
            people: people,
            url: "http://127.0.0.1:\(port)"
        )
    }

    // MARK: The mirror

    /// Starts a mirror of `upstream` on `directory` (its owner registered first, on the same data),
    /// runs its syncs beside `body`, and stops them.
    static func withMirror<T: Sendable>(
        of upstream: Upstream,
        through url: String? = nil,
        directory: String,
        owner: UserID? = nil,
        configure: @escaping @Sendable (inout MirrorConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (API, UserID, ServerServices) async throws -> T
    ) async throws -> T {
        let ownerID: UserID
        let ownerEmail = "owner@example.com"
        if let owner {
            ownerID = owner
        } else {
            ownerID = try await Harness.withServer(dataDirectory: directory, via: .router) { api, _ in
                try await api.register("Owner", email: ownerEmail).1.id
            }
        }
        let upstreamURL = URL(string: url ?? upstream.url)!
        let token = upstream.token
        let base = upstream.base
        let adjust: (inout ServerConfiguration) -> Void = {
            var mirror = MirrorConfiguration(
                upstream: upstreamURL,
                bases: [base],
                token: token,
                owner: .user(ownerID)
            )
            mirror.requestsPerSecond = 200
            mirror.maximumAttempts = 2
            mirror.retryInterval = .seconds(3600)
            configure(&mirror)
            $0.mirror = mirror
        }
        return try await Harness.withServer(dataDirectory: directory, via: .router, configure: adjust) {
            api,
            services in
            let auth = try await api.call(
                .post,
                "auth/login",
                json: LoginRequest(email: ownerEmail, password: "correct horse"),
                as: AuthResponse.self
            )
            let owner = api.authorized(auth.tokens.accessToken)
            let mirror = try #require(services.mirror)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await mirror.run() }
                defer { group.cancelAll() }
                return try await body(owner, ownerID, services)
            }
        }
    }

    /// Waits (up to 90 s) for a sync of `base` to finish with a report other than `previous`, and
    /// answers the base's status.
    @discardableResult
    static func waitForSync(
        _ services: ServerServices,
        _ base: BaseID,
        after previous: MirrorSyncReport? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> MirrorBaseStatus {
        let mirror = try #require(services.mirror)
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline {
            if let status = mirror.status(visible: { _ in true }).bases.first(where: { $0.baseID == base }),
                status.state != "syncing", let report = status.lastSync, report.finishedAt != nil, report != previous
            {
                return status
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("no sync of \(base) finished within 90 s", sourceLocation: sourceLocation)
        throw CancellationError()
    }

    // MARK: Comparing

    /// Every record of a table through `/v0`, cells by field id.
    static func records(_ api: API, base: BaseID, table: TableID) async throws -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        var offset: String?
        repeat {
            let query = "returnFieldsByFieldId=true" + (offset.map { "&offset=\($0)" } ?? "")
            var response = try await api.send(.get, "/v0/\(base)/\(table)?\(query)")
            // An upstream enforcing Airtable's rate limit: wait as it says.
            for _ in 0..<10 where response.status == .tooManyRequests {
                try await Task.sleep(for: .seconds(Double(response.headers[.retryAfter] ?? "1") ?? 1))
                response = try await api.send(.get, "/v0/\(base)/\(table)?\(query)")
            }
            #expect(response.status == .ok, "\(response.text)")
            let page = try #require(JSONValue.parse(Array(response.body)))
            guard case .array(let records)? = page["records"] else {
                Issue.record("no records: \(response.text)")
                break
            }
            for record in records {
                let id = try #require(record["id"]?.stringValue)
                result[id] = record["fields"] ?? .object([:])
            }
            offset = page["offset"]?.stringValue
        } while offset != nil
        return result
    }

    /// The cells of `fields` only.
    static func only(_ records: [String: JSONValue], fields: Set<String>) -> [String: JSONValue] {
        records.mapValues { value in
            guard case .object(let cells) = value else { return value }
            return .object(cells.filter { fields.contains($0.key) })
        }
    }

    /// Asserts the mirror holds exactly the upstream's records of `table`, attachments aside.
    static func expectSame(
        _ upstream: Upstream,
        mirror: API,
        table: TableID,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let schema = try await upstream.api.call(.get, "tables/\(table)", as: PyAirtableModels.Table.self)
        let kept = Set(schema.fields.filter { $0.type != .multipleAttachments }.map(\.id.rawValue))
        let expected = only(try await records(upstream.api, base: upstream.base, table: table), fields: kept)
        let actual = only(try await records(mirror, base: upstream.base, table: table), fields: kept)
        #expect(actual.count == expected.count, sourceLocation: sourceLocation)
        #expect(actual == expected, sourceLocation: sourceLocation)
    }

    // MARK: Tests

    @Test("a full sync serves exactly the upstream's schema and records, verified, read-only, named by its sync")
    func fullSync() async throws {
        try await Harness.withServer { upstreamAPI, _ in
            let port = try #require(upstreamAPI.client.port)
            let upstream = try await Self.makeUpstream(upstreamAPI, port: port, tasks: 1_250)
            let directory = try TemporaryDirectory()
            try await Self.withMirror(of: upstream, directory: directory.path) { owner, _, services in
                let status = try await Self.waitForSync(services, upstream.base)
                let report = try #require(status.lastSync)
                #expect(report.outcome == "ok", "\(report)")
                #expect(report.created == 1_250 + 20)
                #expect(report.recordsFetched == 1_270)
                #expect(report.rateLimited == 0)
                let snapshot = try #require(status.snapshot)
                #expect(snapshot.records == 1_270 && snapshot.tables == 2)
                #expect(status.skippedFields.map(\.name) == ["Files"])

                try await Self.expectSame(upstream, mirror: owner, table: upstream.tasks.id)
                try await Self.expectSame(upstream, mirror: owner, table: upstream.people.id)
                // The schema: same ids, names, types and options, the skipped field aside.
                let mirrored = try await owner.call(
                    .get,
                    "tables/\(upstream.tasks.id)",
                    as: PyAirtableModels.Table.self
                )
                let original = upstream.tasks.fields.filter { $0.type != .multipleAttachments }
                #expect(mirrored.fields.map(\.id) == original.map(\.id))
                #expect(mirrored.fields.map(\.name) == original.map(\.name))
                #expect(mirrored.fields.map(\.type) == original.map(\.type))
                #expect(mirrored.fields.map(\.options) == original.map(\.options))
                #expect(mirrored.primaryFieldID == upstream.tasks.primaryFieldID)
                #expect(mirrored.views.map(\.id) == upstream.tasks.views.map(\.id))
                let base = try await owner.call(.get, "bases/\(upstream.base)", as: Base.self)
                #expect(base.name == "Projects")

                // Answers about the base say which sync they reflect.
                let listed = try await owner.send(.get, "/v0/\(upstream.base)/\(upstream.tasks.id)?maxRecords=1")
                #expect(listed.headers[MirrorSyncHeaderMiddleware.header] == snapshot.syncID)
                let public_ = try await owner.call(.get, "mirror", as: MirrorStatus.self)
                #expect(public_.bases.first?.snapshot?.syncID == snapshot.syncID)
                #expect(public_.upstream == upstream.url)

                // The changes landed as events, as any write's.
                let events = try await owner.call(
                    .get,
                    "events/log?base_id=\(upstream.base)&limit=1000",
                    as: EventLogPage.self
                )
                #expect(events.data.first?.type == .workspaceCreated || events.data.first?.type == .baseCreated)
                #expect(events.data.contains { $0.type == .recordCreated })

                // Read-only here, through either API, for its owner too.
                let record = try #require(
                    try await Self.records(owner, base: upstream.base, table: upstream.people.id).keys.first
                )
                let refused = try await owner.send(
                    .patch,
                    "records/\(record)",
                    json: RecordFieldsRequest(fields: ["Name": "x"])
                )
                #expect(refused.status == .forbidden, "\(refused.text)")
                #expect(refused.error?.error.message.contains("read-only mirror") == true)
                let refusedV0 = try await owner.send(
                    .post,
                    "/v0/\(upstream.base)/\(upstream.people.id)",
                    raw: #"{"fields": {"Name": "new"}}"#
                )
                #expect(refusedV0.status == .forbidden, "\(refusedV0.text)")
                let refusedSchema = try await owner.send(
                    .post,
                    "tables/\(upstream.people.id)/fields",
                    json: CreateFieldRequest(name: "Extra", type: .number)
                )
                #expect(refusedSchema.status == .forbidden)
                // Nothing changed.
                try await Self.expectSame(upstream, mirror: owner, table: upstream.people.id)

                // A stranger learns nothing of the mirror; the status is for members.
                let (stranger, _) = try await owner.register("Stranger")
                let hidden = try await stranger.call(.get, "mirror", as: MirrorStatus.self)
                #expect(hidden.bases.isEmpty)
                let strangerRead = try await stranger.send(.get, "/v0/\(upstream.base)/\(upstream.tasks.id)")
                #expect(
                    strangerRead.status == .forbidden
                        && strangerRead.text.contains("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND")
                )
                #expect(try await stranger.send(.post, "mirror/refresh", raw: "{}").status == .forbidden)
                // /health tells how the mirror stands.
                let health = try await owner.call(.get, "/health", as: HealthStatus.self)
                #expect(health.mirror == MirrorHealth(bases: 1, served: 1, failing: 0, syncing: 0))
            }
        }
    }

    @Test("upstream changes — records, fields, names — propagate on refresh, each as one event, nothing else")
    func changesPropagate() async throws {
        try await Harness.withServer { upstreamAPI, _ in
            let port = try #require(upstreamAPI.client.port)
            let upstream = try await Self.makeUpstream(upstreamAPI, port: port, tasks: 150)
            let directory = try TemporaryDirectory()
            try await Self.withMirror(of: upstream, directory: directory.path) { owner, ownerID, services in
                let first = try await Self.waitForSync(services, upstream.base)
                let before = try await owner.call(.get, "stats", as: ServerStats.self).lastEventSeq
                // A realtime subscriber of the mirror, watching the base.
                let connection = try await services.realtime.connect(user: ownerID)
                await services.realtime.subscribe(
                    connection: connection.id,
                    subscription: "s1",
                    filter: EventFilter(baseID: upstream.base),
                    since: nil
                )
                let head = try #require(first.snapshot).syncID
                let records = try await Self.records(upstream.api, base: upstream.base, table: upstream.tasks.id)
                let ids = records.keys.sorted()
                let name = try #require(upstream.tasks.fields.first { $0.name == "Name" })
                let notes = try #require(upstream.tasks.fields.first { $0.name == "Notes" })
                let site = try #require(upstream.tasks.fields.first { $0.name == "Site" })
                // Upstream: one record changed, one deleted, one created; a field added, one renamed,
                // one deleted; the table renamed.
                try await upstream.api.send(
                    .patch,
                    "records/\(ids[0])",
                    json: RecordFieldsRequest(fields: ["Name": "Changed"])
                )
                try await upstream.api.send(.delete, "records/\(ids[1])")
                let created = try await upstream.api.createRecord(in: upstream.tasks.id, ["Name": "Brand new"])
                let added = try await upstream.api.call(
                    .post,
                    "tables/\(upstream.tasks.id)/fields",
                    json: CreateFieldRequest(name: "Estimate", type: .number),
                    expect: .created,
                    as: Field.self
                )
                try await upstream.api.send(.patch, "fields/\(notes.id)", json: UpdateFieldRequest(name: "Details"))
                try await upstream.api.send(.delete, "fields/\(site.id)")
                try await upstream.api.send(
                    .patch,
                    "tables/\(upstream.tasks.id)",
                    json: UpdateTableRequest(name: "Jobs")
                )

                let refreshed = try await owner.send(.post, "mirror/refresh", raw: "{}")
                #expect(refreshed.status == .accepted, "\(refreshed.text)")
                let second = try await Self.waitForSync(services, upstream.base, after: first.lastSync)
                let report = try #require(second.lastSync)
                #expect(report.outcome == "ok", "\(report)")
                #expect(report.created == 1 && report.deleted == 1 && report.updated == 1, "\(report)")
                #expect(second.snapshot?.syncID != head)

                try await Self.expectSame(upstream, mirror: owner, table: upstream.tasks.id)
                let table = try await owner.call(.get, "tables/\(upstream.tasks.id)", as: PyAirtableModels.Table.self)
                #expect(table.name == "Jobs")
                #expect(table.fields.contains { $0.id == added.id && $0.name == "Estimate" })
                #expect(table.fields.contains { $0.id == notes.id && $0.name == "Details" })
                #expect(!table.fields.contains { $0.id == site.id })
                #expect(table.fields.first?.id == name.id)

                let events = try await owner.call(.get, "events/log?since=\(before)&limit=1000", as: EventLogPage.self)
                let types = events.data.map(\.type.rawValue)
                #expect(types.filter { $0 == "record.updated" }.count == 1, "\(types)")
                #expect(types.filter { $0 == "record.created" }.count == 1)
                #expect(types.filter { $0 == "record.deleted" }.count == 1)
                #expect(
                    types.contains("field.created") && types.contains("field.updated")
                        && types.contains("field.deleted")
                )
                #expect(types.contains("table.updated"))
                #expect(events.data.contains { $0.recordID?.rawValue == created.id.rawValue })
                // The subscriber got each of them, live, in order.
                var live: [RealtimeEvent] = []
                // Bounded: past 30 s the connection is closed, which ends the outbox.
                let watchdog = Task {
                    try? await Task.sleep(for: .seconds(30))
                    await services.realtime.disconnect(connection.id)
                }
                defer { watchdog.cancel() }
                while live.count < events.data.count, let message = await connection.outbox.next() {
                    if case .event(_, _, let event) = message { live.append(event) }
                }
                #expect(live.map(\.seq) == events.data.map(\.seq))
                #expect(live.contains { $0.type == "record.updated" && $0.recordID == ids[0] })
                await services.realtime.disconnect(connection.id)

                // Nothing changed upstream: a refresh changes nothing and logs nothing.
                let quiet = try await owner.call(.get, "stats", as: ServerStats.self).lastEventSeq
                services.mirror?.refresh()
                let third = try await Self.waitForSync(services, upstream.base, after: second.lastSync)
                #expect(third.lastSync?.created == 0 && third.lastSync?.updated == 0 && third.lastSync?.deleted == 0)
                let after = try await owner.call(.get, "events/log?since=\(quiet)", as: EventLogPage.self)
                #expect(after.data.isEmpty, "\(after.data.map(\.type))")
            }
        }
    }

    @Test(
        "an upstream failing mid-sync leaves the previous snapshot serving whole; a restart resumes from the kept pages"
    )
    func interruptedSync() async throws {
        try await Harness.withServer { upstreamAPI, _ in
            let port = try #require(upstreamAPI.client.port)
            let upstream = try await Self.makeUpstream(upstreamAPI, port: port, tasks: 900)
            try await FaultyProxy.withRunning(upstreamPort: port) { proxy in
                let directory = try TemporaryDirectory()
                let owner: UserID = try await Self.withMirror(
                    of: upstream,
                    through: proxy.url,
                    directory: directory.path
                ) {
                    mirrorAPI,
                    ownerID,
                    services in
                    let first = try await Self.waitForSync(services, upstream.base)
                    let served = try #require(first.snapshot)
                    // Every task changes upstream; the proxy then fails after a few pages.
                    let ids = try await Self.records(upstream.api, base: upstream.base, table: upstream.tasks.id).keys
                        .sorted()
                    for chunk in stride(from: 0, to: ids.count, by: 100) {
                        let operations = ids[chunk..<min(ids.count, chunk + 100)].map {
                            BatchOperation.update(
                                id: RecordID(unchecked: $0),
                                fields: ["Name": "Renamed"],
                                ifVersion: nil
                            )
                        }
                        try await upstream.api.send(
                            .post,
                            "tables/\(upstream.tasks.id)/records/batch",
                            json: BatchRequest(operations: operations)
                        )
                    }
                    proxy.allow(5)
                    services.mirror?.refresh()
                    let failed = try await Self.waitForSync(services, upstream.base, after: first.lastSync)
                    #expect(failed.state == "failed")
                    #expect(failed.lastSync?.outcome == "failed")
                    #expect(
                        failed.lastSync?.error?.contains("503") == true,
                        "\(String(describing: failed.lastSync?.error))"
                    )
                    #expect(failed.snapshot == served)
                    // The previous snapshot, whole: not one record renamed.
                    let names = try await Self.records(mirrorAPI, base: upstream.base, table: upstream.tasks.id)
                        .values.compactMap { $0[upstream.tasks.fields[0].id.rawValue]?.stringValue }
                    #expect(names.count == 900)
                    #expect(!names.contains("Renamed"))
                    let header = try await mirrorAPI.send(
                        .get,
                        "/v0/\(upstream.base)/\(upstream.tasks.id)?maxRecords=1"
                    )
                    #expect(header.headers[MirrorSyncHeaderMiddleware.header] == served.syncID)
                    let health = try await mirrorAPI.call(.get, "/health", as: HealthStatus.self)
                    #expect(health.mirror?.failing == 1)
                    #expect(health.mirror?.lastError?.contains("503") == true)
                    return ownerID
                }
                // Restarted with the upstream reachable: the sync goes on from the pages it kept.
                proxy.allow(.max)
                let forwardedBefore = proxy.forwarded
                try await Self.withMirror(of: upstream, through: proxy.url, directory: directory.path, owner: owner) {
                    mirrorAPI,
                    _,
                    services in
                    let resumed = try await Self.waitForSync(services, upstream.base)
                    let report = try #require(resumed.lastSync)
                    #expect(report.outcome == "ok", "\(report)")
                    #expect(report.resumed)
                    #expect(report.updated == 900)
                    // 9 pages of tasks and 1 of people, 3 pages already kept; plus 3 schema and name reads.
                    #expect(proxy.forwarded - forwardedBefore < 13, "\(proxy.forwarded - forwardedBefore) requests")
                    try await Self.expectSame(upstream, mirror: mirrorAPI, table: upstream.tasks.id)
                }
            }
        }
    }

    @Test(
        "paced at Airtable's 5 requests a second, a sync meets no 429; the 429s that come are waited out as Retry-After says"
    )
    func rateLimits() async throws {
        // The upstream's rate limit refills on its clock: a real one here.
        let configure: (inout ServerConfiguration) -> Void = {
            $0.airtable.enforceRateLimit = true
            $0.now = { Date() }
        }
        try await Harness.withServer(configure: configure) { upstreamAPI, _ in
            let port = try #require(upstreamAPI.client.port)
            let upstream = try await Self.makeUpstream(upstreamAPI, port: port, tasks: 650)
            // The scaffolding used the upstream's allowance; let it refill.
            try await Task.sleep(for: .seconds(1))
            let paced = try TemporaryDirectory()
            let started = ContinuousClock.now
            try await Self.withMirror(of: upstream, directory: paced.path, configure: { $0.requestsPerSecond = 5 }) {
                owner,
                _,
                services in
                let status = try await Self.waitForSync(services, upstream.base)
                let report = try #require(status.lastSync)
                #expect(report.outcome == "ok", "\(report)")
                #expect(report.rateLimited == 0)
                // 7 pages of tasks, 1 of people, the schema twice and the bases list: 11 requests, 5 a second.
                #expect(report.requests == 11)
                #expect(ContinuousClock.now - started >= .seconds(2))
                try await Self.expectSame(upstream, mirror: owner, table: upstream.tasks.id)
            }
            // 429s, whenever they come, are waited out as Retry-After says: two of them, from a
            // proxy, with the pace Airtable allows (so the upstream itself sends none).
            try await Task.sleep(for: .seconds(1))
            try await FaultyProxy.withRunning(upstreamPort: port) { proxy in
                proxy.rateLimit(next: 2)
                let limited = try TemporaryDirectory()
                try await Self.withMirror(
                    of: upstream,
                    through: proxy.url,
                    directory: limited.path,
                    configure: {
                        $0.requestsPerSecond = 5
                        $0.maximumAttempts = 5
                    }
                ) { owner, _, services in
                    let status = try await Self.waitForSync(services, upstream.base)
                    let report = try #require(status.lastSync)
                    #expect(report.outcome == "ok", "\(report)")
                    #expect(report.rateLimited == 2)
                    #expect(report.requests == 13)
                    try await Self.expectSame(upstream, mirror: owner, table: upstream.tasks.id)
                }
            }
        }
    }
}

/// A proxy in front of the upstream that forwards a set number of requests, then answers 503 to
/// every other one: an upstream going away mid-sync. It can also answer 429 (`Retry-After: 1`) to
/// the next few requests, as a rate-limited upstream does.
final class FaultyProxy: Sendable {
    private let budget = Atomic<Int>(.max)
    private let limited = Atomic<Int>(0)
    private let count = Atomic<Int>(0)
    private let boundPort = Mutex(0)

    var url: String { "http://127.0.0.1:\(boundPort.withLock { $0 })" }
    /// Requests forwarded so far.
    var forwarded: Int { count.load(ordering: .acquiring) }

    /// Answers the next `requests` requests 429 with `Retry-After: 1`.
    func rateLimit(next requests: Int) {
        limited.store(requests, ordering: .releasing)
    }

    /// Forwards `requests` more requests, then fails every other one.
    func allow(_ requests: Int) {
        budget.store(requests, ordering: .releasing)
    }

    static func withRunning<T: Sendable>(
        upstreamPort: Int,
        _ body: @Sendable (FaultyProxy) async throws -> T
    ) async throws -> T {
        let proxy = FaultyProxy()
        let router = Router()
        router.get("**") { request, _ -> Response in
            if proxy.limited.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue > 0 {
                return Response(
                    status: .tooManyRequests,
                    headers: [.retryAfter: "1"],
                    body: .init(
                        byteBuffer: ByteBuffer(string: #"{"error":{"type":"TOO_MANY_REQUESTS","message":"slow down"}}"#)
                    )
                )
            }
            guard proxy.budget.wrappingSubtract(1, ordering: .acquiringAndReleasing).oldValue > 0 else {
                return Response(
                    status: .serviceUnavailable,
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error":"SERVICE_UNAVAILABLE"}"#))
                )
            }
            proxy.count.add(1, ordering: .acquiringAndReleasing)
            var forward = HTTPClientRequest(url: "http://127.0.0.1:\(upstreamPort)\(request.uri)")
            for field in request.headers where field.name == .authorization {
                forward.headers.add(name: "Authorization", value: field.value)
            }
            let answer = try await HTTPClient.shared.execute(forward, timeout: .seconds(30))
            let bytes = try await answer.body.collect(upTo: 64 << 20)
            var headers = HTTPFields()
            for name in ["Content-Type", "Retry-After"] {
                if let value = answer.headers.first(name: name), let field = HTTPField.Name(name) {
                    headers[field] = value
                }
            }
            return Response(
                status: .init(code: Int(answer.status.code)),
                headers: headers,
                body: .init(byteBuffer: bytes)
            )
        }
        return try await LoopbackServer.withRunning(router, label: "pyat.faulty-proxy") { port in
            proxy.boundPort.withLock { $0 = port }
            return try await body(proxy)
        }
    }
}
