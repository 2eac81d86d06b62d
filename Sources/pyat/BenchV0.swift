import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PyAirtableModels
import ReferenceServer
import ReferenceServerTesting

extension Pyat.Bench {
    /// `pyat bench v0`: Airtable's API against `/api/v1` on the same operations, in one run.
    struct V0Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "v0",
            abstract: "Airtable's API under /v0 against /api/v1: list 100 records, get one, batch-create 10.",
            discussion: """
                Starts an embedded server (durable, as `pyat serve` runs), makes a table of 500 records \
                through /api/v1, then for each operation alternates rounds of the /v0 request and its \
                /api/v1 equivalent with one AsyncHTTPClient, sequentially: `GET /v0/{base}/{table}?pageSize=100` \
                against `GET /api/v1/tables/{id}/records?page_size=100`, `GET /v0/{base}/{table}/{record}` \
                against `GET /api/v1/records/{id}`, and `POST /v0/{base}/{table}` with 10 records against \
                `POST /api/v1/tables/{id}/records/batch` with 10 creates. Every answer is checked (its \
                status, and 100 records, the record asked for, or 10 created); any other answer, socket \
                error or timeout fails the run. Prints p50 and p99 per side and the ratio of the p50s; \
                the target is /v0 within 1.3x of /api/v1 on each.
                """
        )

        @Option(help: "Requests per round per side.")
        var requests: Int = 200

        @Option(help: "Rounds (alternating /v0 and /api/v1).")
        var rounds: Int = 5

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard requests > 0, rounds > 0 else { throw ValidationError("--requests and --rounds must be positive") }
        }

        /// The 1.3x the issue asks for.
        static let target = 1.3

        func run() async throws {
            let durable: @Sendable (inout ServerConfiguration) -> Void = { $0.durableCommits = true }
            let results = try await TestServer.withRunning(configure: durable) { server in
                let demo = try await server.seedDemo()
                let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
                do {
                    let results = try await measure(Caller(http: http, server: server.url, token: demo.token), demo)
                    try await http.shutdown()
                    return results
                } catch {
                    try? await http.shutdown()
                    throw error
                }
            }
            report(results)
        }

        struct Result {
            var operation: String
            var v0: [Double]
            var v1: [Double]
        }

        private func measure(_ caller: Caller, _ demo: DemoCredentials) async throws -> [Result] {
            guard let workspace = demo.workspaceID else { throw CommandFailure("the demo user has no workspace") }
            let base = try await caller.object(
                .POST,
                "/api/v1/workspaces/\(workspace)/bases",
                body: ["name": "v0 bench"],
                expect: .created
            )
            let baseID = try Self.string(base["id"], "base id")
            let table = try await caller.object(
                .POST,
                "/api/v1/bases/\(baseID)/tables",
                body: [
                    "name": "Bench",
                    "fields": [
                        ["name": "Name", "type": "singleLineText"], ["name": "Score", "type": "number"],
                        ["name": "Done", "type": "checkbox"], ["name": "Notes", "type": "multilineText"],
                        [
                            "name": "Status", "type": "singleSelect",
                            "options": ["choices": [["name": "Todo"], ["name": "Done"]]],
                        ],
                    ],
                ],
                expect: .created
            )
            let tableID = try Self.string(table["id"], "table id")
            for chunk in 0..<5 {
                let operations = (0..<100).map { index -> [String: Any] in
                    let number = chunk * 100 + index
                    return [
                        "op": "create",
                        "fields": [
                            "Name": "Record \(number)", "Score": number, "Done": number % 2 == 0,
                            "Notes": "Some text for record \(number).", "Status": number % 3 == 0 ? "Done" : "Todo",
                        ],
                    ]
                }
                _ = try await caller.object(
                    .POST,
                    "/api/v1/tables/\(tableID)/records/batch",
                    body: ["operations": operations],
                    expect: .ok
                )
            }
            let first = try await caller.object(.GET, "/api/v1/tables/\(tableID)/records?page_size=1", expect: .ok)
            guard let data = first["data"] as? [[String: Any]], let recordID = data.first?["id"] as? String else {
                throw CommandFailure("the bench table has no record")
            }

            let createBody: ([String: Any]) -> [String: Any] = { fields in
                ["records": (0..<10).map { _ in ["fields": fields] }]
            }
            let batchBody: ([String: Any]) -> [String: Any] = { fields in
                ["operations": (0..<10).map { _ in ["op": "create", "fields": fields] }]
            }
            let fields: [String: Any] = ["Name": "New", "Score": 1, "Done": true, "Status": "Todo"]
            let v0Create = try JSONSerialization.data(withJSONObject: createBody(fields))
            let v1Create = try JSONSerialization.data(withJSONObject: batchBody(fields))

            let operations: [(String, Caller.Check, Caller.Check)] = [
                (
                    "list_100",
                    Caller.Check(method: .GET, path: "/v0/\(baseID)/\(tableID)?pageSize=100", body: nil) {
                        ($0["records"] as? [Any])?.count == 100
                    },
                    Caller.Check(method: .GET, path: "/api/v1/tables/\(tableID)/records?page_size=100", body: nil) {
                        ($0["data"] as? [Any])?.count == 100
                    }
                ),
                (
                    "get_1",
                    Caller.Check(method: .GET, path: "/v0/\(baseID)/\(tableID)/\(recordID)", body: nil) {
                        $0["id"] as? String == recordID
                    },
                    Caller.Check(method: .GET, path: "/api/v1/records/\(recordID)", body: nil) {
                        $0["id"] as? String == recordID
                    }
                ),
                (
                    "create_10",
                    Caller.Check(method: .POST, path: "/v0/\(baseID)/\(tableID)", body: v0Create) {
                        ($0["records"] as? [[String: Any]])?.compactMap { $0["id"] as? String }.count == 10
                    },
                    Caller.Check(method: .POST, path: "/api/v1/tables/\(tableID)/records/batch", body: v1Create) {
                        ($0["results"] as? [[String: Any]])?.compactMap { $0["id"] as? String }.count == 10
                    }
                ),
            ]
            var results: [Result] = []
            for (name, v0, v1) in operations {
                // Warm both paths and the connection.
                for _ in 0..<20 {
                    _ = try await caller.timed(v0)
                    _ = try await caller.timed(v1)
                }
                var result = Result(operation: name, v0: [], v1: [])
                for _ in 0..<rounds {
                    for _ in 0..<requests { result.v0.append(try await caller.timed(v0)) }
                    for _ in 0..<requests { result.v1.append(try await caller.timed(v1)) }
                }
                results.append(result)
            }
            return results
        }

        private static func string(_ value: Any?, _ what: String) throws -> String {
            guard let text = value as? String else { throw CommandFailure("the server answered no \(what)") }
            return text
        }

        private func report(_ results: [Result]) {
            func percentile(_ values: [Double], _ p: Double) -> Double {
                let sorted = values.sorted()
                return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
            }
            var figures: [(String, Double)] = []
            var met = true
            for result in results {
                let v0 = percentile(result.v0, 0.5)
                let v1 = percentile(result.v1, 0.5)
                figures += [
                    ("\(result.operation)_v0_p50_us", v0),
                    ("\(result.operation)_v0_p99_us", percentile(result.v0, 0.99)),
                    ("\(result.operation)_v1_p50_us", v1),
                    ("\(result.operation)_v1_p99_us", percentile(result.v1, 0.99)),
                    ("\(result.operation)_ratio_p50", v0 / v1),
                ]
                met = met && v0 / v1 <= Self.target
            }
            if json {
                var lines = figures.map { "  \"\($0.0)\": \(($0.1 * 1000).rounded() / 1000)" }
                lines.append("  \"target_met\": \(met)")
                print("{\n\(lines.joined(separator: ",\n"))\n}")
            } else {
                print(
                    "/v0 against /api/v1, \(requests * rounds) requests per side per operation, sequential, "
                        + "every answer checked"
                )
                for (name, value) in figures {
                    print(name.padding(toLength: 26, withPad: " ", startingAt: 0), String(format: "%.3f", value))
                }
                print("target (/v0 p50 within \(Self.target)x of /api/v1 on each):", met ? "met" : "missed")
            }
        }
    }
}

/// One HTTP client and token for both sides; every answer is checked.
private struct Caller: Sendable {
    let http: HTTPClient
    let server: String
    let token: String

    /// A request and what its answer must hold.
    struct Check: @unchecked Sendable {
        var method: HTTPMethod
        var path: String
        var body: Data?
        var holds: ([String: Any]) -> Bool
    }

    func object(
        _ method: HTTPMethod,
        _ path: String,
        body: [String: Any]? = nil,
        expect: HTTPResponseStatus
    ) async throws -> [String: Any] {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let (status, object) = try await send(method, path, data)
        guard status == expect else { throw CommandFailure("\(method) \(path) answered \(status)") }
        return object
    }

    /// Sends `check`'s request, checks the answer, and answers the microseconds it took.
    func timed(_ check: Check) async throws -> Double {
        let start = ContinuousClock.now
        let (status, object) = try await send(check.method, check.path, check.body)
        let elapsed = ContinuousClock.now - start
        guard (200..<300).contains(Int(status.code)) else {
            throw CommandFailure("\(check.method) \(check.path) answered \(status)")
        }
        guard check.holds(object) else {
            throw CommandFailure("\(check.method) \(check.path) answered something else than expected")
        }
        return Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
    }

    private func send(
        _ method: HTTPMethod,
        _ path: String,
        _ body: Data?
    ) async throws -> (
        HTTPResponseStatus, [String: Any]
    ) {
        var request = HTTPClientRequest(url: server + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any]
        return (response.status, object ?? [:])
    }
}
