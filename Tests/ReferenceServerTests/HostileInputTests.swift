import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOHTTP1
import NIOWebSocket
import PyAirtableModels
import Synchronization
import TestSupport
import Testing
import WSClient

@testable import ReferenceServer

/// Deep formula shapes around `{Score}`, `levels` deep.
enum DeepShape: String, CaseIterable, Sendable {
    case parentheses, not, ifCondition, ifBranch, negation, lower, chain

    func source(_ levels: Int) -> String {
        switch self {
        case .parentheses: String(repeating: "(", count: levels) + "{Score}" + String(repeating: ")", count: levels)
        case .not: String(repeating: "NOT(", count: levels) + "{Score}" + String(repeating: ")", count: levels)
        case .ifCondition:
            String(repeating: "IF(", count: levels) + "{Score}" + String(repeating: ",1,0)", count: levels)
        case .ifBranch: String(repeating: "IF({Score},", count: levels) + "1" + String(repeating: ")", count: levels)
        case .negation: String(repeating: "-", count: levels) + "{Score}"
        case .lower: String(repeating: "LOWER(", count: levels) + "{Score}" + String(repeating: ")", count: levels)
        case .chain: "{Score}" + String(repeating: "+1", count: levels)
        }
    }
}

/// `text` as a query value: only unreserved characters and parentheses and commas stay as they are.
private func hostileQueryValue(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "()-._~,!*")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

/// A clock whose every reading is `step` later than the one before: time passes as fast as code looks.
private final class SteppingClock: Clock, Sendable {
    typealias Instant = ContinuousClock.Instant
    private let current = Mutex(ContinuousClock.now)
    let step: Duration

    init(step: Duration) { self.step = step }

    var now: Instant {
        current.withLock { now in
            now = now.advanced(by: step)
            return now
        }
    }

    var minimumResolution: Duration { .nanoseconds(1) }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try await ContinuousClock().sleep(until: deadline, tolerance: tolerance)
    }
}

/// A live server from `buildApplication` (the real HTTP pipeline and WebSocket upgrade) with `limits`.
private func withLimitedServer<T: Sendable>(
    limits: RequestLimits = RequestLimits(),
    maximumBodySize: Int = 4 * 1024 * 1024,
    _ body: @escaping @Sendable (API, Int) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory()
    var configuration = Harness.configuration(
        dataDirectory: directory.path,
        clock: ManualWallClock(),
        maximumBodySize: maximumBodySize
    )
    configuration.limits = limits
    let services = try await ServerServices.open(configuration: configuration, logger: Harness.logger)
    return try await buildApplication(services: services).test(.live) { client in
        try await body(API(client: client), try #require(client.port))
    }
}

@Suite("Hostile input: deep formulas and JSON, long URLs, cursors, frames, filter scans", .timeLimit(.minutes(15)))
struct HostileInputTests {
    @Test(
        "a formula nested 1,500 deep is 422 with a position on every route that takes one",
        arguments: DeepShape.allCases
    )
    func deepFormulasOnEveryRoute(shape: DeepShape) async throws {
        try await withLimitedServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let source = shape.source(1_500)
            let view = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "Plain"),
                expect: .created,
                as: View.self
            )
            let responses = [
                (
                    "filter=",
                    try await client.send(.get, "tables/\(table.id)/records?filter=\(hostileQueryValue(source))")
                ),
                (
                    "POST views",
                    try await client.send(
                        .post,
                        "tables/\(table.id)/views",
                        json: CreateViewRequest(name: "Deep", filter: source)
                    )
                ),
                (
                    "PATCH view",
                    try await client.send(.patch, "views/\(view.id)", json: UpdateViewRequest(filter: source))
                ),
            ]
            for (route, response) in responses {
                let error = expectError(response, .unprocessableContent, .validation, "\(shape) \(route)")
                #expect(error?.message.contains("deeper than 128 levels") == true, "\(route): \(response.text)")
                #expect(error?.position != nil, "\(route): \(response.text)")
            }
            // Nothing was stored: the view keeps no filter and no view was added.
            let views = try await client.call(.get, "tables/\(table.id)/views", as: Page<View>.self).data
            #expect(views.count == 2)
            #expect(views.allSatisfy { $0.filter == nil })
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("a formula of 100,000 levels is refused on every route, and the server stays up")
    func hundredThousandLevels() async throws {
        try await withLimitedServer { api, port in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let view = try await client.call(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "Plain"),
                expect: .created,
                as: View.self
            )
            for shape in [DeepShape.parentheses, .not, .chain] {
                let source = shape.source(100_000)
                for response in [
                    try await client.send(
                        .post,
                        "tables/\(table.id)/views",
                        json: CreateViewRequest(name: "D", filter: source)
                    ),
                    try await client.send(.patch, "views/\(view.id)", json: UpdateViewRequest(filter: source)),
                ] {
                    let error = expectError(response, .unprocessableContent, .validation, "\(shape)")
                    #expect(error?.message.contains("longer than 32768 characters") == true, "\(response.text)")
                    #expect(error?.position == 32_768)
                }
                // In a URL it is past the request head limit before any formula parser sees it: the
                // server answers 431 and closes that connection (on its own connection here).
                let url =
                    "http://127.0.0.1:\(port)/api/v1/tables/\(table.id)/records?filter=\(hostileQueryValue(source))"
                var request = HTTPClientRequest(url: url)
                request.headers.add(name: "Authorization", value: "Bearer \(client.token ?? "")")
                let status = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)).status.code
                #expect(status == 431, "\(String(describing: status))")
            }
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("a GET URL of 16,000 characters with a wide filter works")
    func longURL() async throws {
        try await withLimitedServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            for name in ["n7", "n512", "other"] {
                _ = try await client.createRecord(in: table.id, ["Name": .string(name)])
            }
            let prefix = "/api/v1/tables/\(table.id)/records?page_size=100&filter="
            var alternatives: [String] = []
            var path = ""
            var index = 0
            while true {
                alternatives.append("{Name}='n\(index)'")
                let candidate = prefix + hostileQueryValue("OR(\(alternatives.joined(separator: ",")))")
                if candidate.utf8.count > 16_000 { break }
                path = candidate
                index += 1
            }
            #expect(path.utf8.count > 15_900)
            let response = try await client.send(.get, path)
            #expect(response.status == .ok, "\(response.text.prefix(300))")
            let names = try response.decode(Page<PyAirtableModels.Record>.self).data.compactMap {
                $0.fields["Name"]?.displayText
            }
            #expect(Set(names) == ["n7", "n512"])
        }
    }

    @Test(
        "JSON bodies nested past the limit are 400 before any decoder, and nothing is written",
        arguments: [65, 600, 100_000]
    )
    func deepJSONBodies(depth: Int) async throws {
        try await withLimitedServer { api, _ in
            let (client, _) = try await api.register()
            let (workspace, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "kept"])
            let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.post, "tables/\(table.id)/records", #"{"fields": {"Name": \#(deep)}}"#),
                (.patch, "records/\(record.id)", #"{"fields": {"Name": \#(deep)}}"#),
                (.post, "tables/\(table.id)/records/batch", #"{"operations": \#(deep)}"#),
                (.post, "tables/\(table.id)/views", #"{"name": "V", "sort": \#(deep)}"#),
                (.post, "workspaces", deep),
                (.patch, "workspaces/\(workspace.id)", #"{"name": \#(deep)}"#),
            ]
            for (method, path, body) in cases {
                for headers in [HTTPFields(), [.idempotencyKey: "deep-\(UUID().uuidString)"]] {
                    let response = try await client.send(method, path, raw: body, headers: headers)
                    let error = expectError(response, .badRequest, .validation, "\(method) \(path)")
                    #expect(error?.message.contains("deeper than 64 levels") == true, "\(response.text)")
                }
            }
            let records = try await client.call(
                .get,
                "tables/\(table.id)/records",
                as: Page<PyAirtableModels.Record>.self
            )
            #expect(records.data.map(\.id) == [record.id])
            #expect(records.data.first?.version == 1)
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("past a raised JSON depth limit, JSONDecoder's own limit of 512 still answers 400")
    func decoderDepthLimit() async throws {
        try await withLimitedServer(limits: RequestLimits(maximumJSONDepth: 1_000_000)) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            for depth in [513, 100_000] {
                let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
                for body in [#"{"fields": {"Name": \#(deep)}}"#, deep] {
                    let response = try await client.send(
                        .post,
                        "tables/\(table.id)/records",
                        raw: body,
                        headers: [.idempotencyKey: "k-\(UUID().uuidString)"]
                    )
                    expectError(response, .badRequest, .validation, "depth \(depth)")
                }
            }
            let records = try await client.call(
                .get,
                "tables/\(table.id)/records",
                as: Page<PyAirtableModels.Record>.self
            )
            #expect(records.data.isEmpty)
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("garbage and oversized cursors are 422 naming the cursor")
    func badCursors() async throws {
        try await withLimitedServer(limits: RequestLimits(maximumCursorLength: 512)) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            for index in 0..<3 { _ = try await client.createRecord(in: table.id, ["Name": .string("r\(index)")]) }
            let first = try await client.call(
                .get,
                "tables/\(table.id)/records?page_size=1",
                as: Page<PyAirtableModels.Record>.self
            )
            let valid = try #require(first.nextCursor)
            func base64URL(_ text: String) -> String {
                Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                    .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            }
            let garbage = [
                "!!!", "%00%ff", base64URL("not json"), base64URL(#"{"k": 5, "s": "x", "q": 1}"#),
                base64URL(String(repeating: "[", count: 300)), base64URL(#"{"k":[{"z":"1"}],"s":1,"q":"x"}"#),
                String(valid.dropLast(3)),
            ]
            for cursor in garbage {
                let response = try await client.send(.get, "tables/\(table.id)/records?page_size=1&cursor=\(cursor)")
                let error = expectError(response, .unprocessableContent, .validation, cursor)
                #expect(error?.message.contains("cursor") == true, "\(response.text)")
            }
            let oversized = String(repeating: "A", count: 513)
            let response = try await client.send(.get, "tables/\(table.id)/records?cursor=\(oversized)")
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.message.contains("maximumCursorLength") == true, "\(response.text)")
            // The real cursor still pages.
            let second = try await client.send(.get, "tables/\(table.id)/records?page_size=1&cursor=\(valid)")
            #expect(second.status == .ok, "\(second.text)")
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("too many sort keys are 422")
    func sortKeys() async throws {
        try await withLimitedServer(limits: RequestLimits(maximumSortKeys: 3)) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let sort = "Name,Score,Status,Done"
            let list = try await client.send(.get, "tables/\(table.id)/records?sort=\(sort)")
            let error = expectError(list, .unprocessableContent, .validation)
            #expect(error?.message.contains("maximumSortKeys") == true)
            let specs = ["Name", "Score", "Status", "Done"].map { SortSpec(field: $0) }
            let view = try await client.send(
                .post,
                "tables/\(table.id)/views",
                json: CreateViewRequest(name: "V", sort: specs)
            )
            expectError(view, .unprocessableContent, .validation)
            let fine = try await client.send(.get, "tables/\(table.id)/records?sort=Name,Score,Status")
            #expect(fine.status == .ok)
        }
    }

    @Test("a filter SQLite cannot run stops at the configured row limit, naming it")
    func scanRowLimit() async throws {
        try await withLimitedServer(limits: RequestLimits(maximumFilterScanRows: 100)) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let operations = (0..<300).map { index in
                BatchOperation.create(fields: [
                    "Name": .string("r\(index)"), "Status": .string(index % 2 == 0 ? "Done" : "Todo"),
                    "Score": .number(Double(index)),
                ])
            }
            for chunk in stride(from: 0, to: 300, by: 100) {
                let response = try await client.send(
                    .post,
                    "tables/\(table.id)/records/batch",
                    json: BatchRequest(operations: Array(operations[chunk..<chunk + 100]))
                )
                #expect(response.status == .ok, "\(response.text)")
            }
            // Arithmetic on a field runs row by row: matching nothing, it would read all 300 rows.
            let residual = "tables/\(table.id)/records?filter=\(hostileQueryValue("{Score} + 0 = -1"))"
            let refused = try await client.send(.get, residual)
            let error = expectError(refused, .unprocessableContent, .validation)
            #expect(error?.message.contains("more than 100 rows") == true, "\(refused.text)")
            #expect(error?.message.contains("maximumFilterScanRows") == true)
            // A page that fills within the limit is answered.
            let early = try await client.send(
                .get,
                "tables/\(table.id)/records?page_size=5&filter=\(hostileQueryValue("{Score} * 1 >= 0"))"
            )
            #expect(early.status == .ok, "\(early.text)")
            // What runs in SQLite is not counted: the benchmark's filter reads only matching rows.
            let pushed = try await client.send(
                .get,
                "tables/\(table.id)/records?page_size=1000&filter=\(hostileQueryValue("AND({Status} = 'Done', {Score} > 100)"))"
            )
            #expect(pushed.status == .ok, "\(pushed.text)")
            #expect(try pushed.decode(Page<PyAirtableModels.Record>.self).data.count == 99)
            try await BadInputTests.expectStillServing(client)
        }
    }

    @Test("a filter SQLite cannot run stops at the configured time limit, naming it")
    func scanTimeLimit() async throws {
        let limits = RequestLimits(maximumFilterScanDuration: .seconds(5), clock: SteppingClock(step: .seconds(10)))
        try await withLimitedServer(limits: limits) { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            // More rows than one read of the scan (256), so the clock is looked at between reads.
            for _ in 0..<3 {
                let operations = (0..<100).map { BatchOperation.create(fields: ["Score": .number(Double($0))]) }
                let created = try await client.send(
                    .post,
                    "tables/\(table.id)/records/batch",
                    json: BatchRequest(operations: operations)
                )
                #expect(created.status == .ok)
            }
            let response = try await client.send(
                .get,
                "tables/\(table.id)/records?filter=\(hostileQueryValue("{Score} + 0 = -1"))"
            )
            let error = expectError(response, .unprocessableContent, .validation)
            #expect(error?.message.contains("maximumFilterScanDuration") == true, "\(response.text)")
            // Without a residual pass the clock is not consulted.
            let pushed = try await client.send(
                .get,
                "tables/\(table.id)/records?filter=\(hostileQueryValue("{Score} = 3"))"
            )
            #expect(pushed.status == .ok, "\(pushed.text)")
        }
    }

    @Test("an oversized WebSocket frame closes with 1009; a deep one gets an error frame and the socket stays")
    func webSocketFrames() async throws {
        try await RealtimeServer.run { server in
            let (client, _) = try await server.api.register()
            let token = try #require(client.token)

            let deepSocket = server.socket(token: token)
            deepSocket.sendRaw(String(repeating: "[", count: 1_000) + String(repeating: "]", count: 1_000))
            let answer = await deepSocket.next()
            guard case .error(nil, let error)? = answer else {
                Issue.record("expected an error frame, got \(String(describing: answer))")
                return
            }
            #expect(error.code == 400)
            #expect(error.message.contains("maximumFrameDepth"))
            try await deepSocket.expectPong()
            deepSocket.close()

            let bigSocket = server.socket(token: token)
            try await bigSocket.expectPong()
            bigSocket.sendRaw(#"{"type": "ping", "pad": ""# + String(repeating: "x", count: 100 * 1024) + #""}"#)
            let closed = await bigSocket.closed.next()
            #expect(closed??.closeCode == .messageTooLarge, "\(String(describing: closed))")

            let after = server.socket(token: token)
            try await after.expectPong()
            after.close()
        }
    }
}
