import Foundation
import HTTPTypes
import PyAirtableModels
import Testing

@testable import ReferenceServer

@Suite("Bad input: malformed bodies, oversize bodies, bad ids and headers", .timeLimit(.minutes(15)))
struct BadInputTests {
    /// After bad input the server still serves: `/health` is 200 and a normal write works.
    static func expectStillServing(_ client: API, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let health = try await client.send(.get, "/health")
        #expect(health.status == .ok, sourceLocation: sourceLocation)
        #expect(try health.decode(HealthStatus.self).status == "ok", sourceLocation: sourceLocation)
        let write = try await client.send(.post, "workspaces", json: CreateWorkspaceRequest(name: "Still here"))
        #expect(write.status == .created, "\(write.text)", sourceLocation: sourceLocation)
    }

    @Test(
        "malformed JSON is 400 VALIDATION_ERROR",
        arguments: ["{", #"{"name": }"#, "[1, 2", "nul", "{'name': 'x'}", #"{"name": "x"} trailing"#, "\u{FF}\u{FE}"]
    )
    func malformedJSON(body: String) async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let before = try await client.stats()
            let response = try await client.send(.post, "workspaces", raw: body)
            expectError(response, .badRequest, .validation, body)
            #expect(try await client.stats().workspaces == before.workspaces)
            try await Self.expectStillServing(client)
        }
    }

    @Test("a value of the wrong type is 400 naming the key")
    func wrongTypes() async throws {
        try await Harness.withServer { api, _ in
            let (client, user) = try await api.register()
            let (workspace, base, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "x"])
            let cases: [(HTTPRequest.Method, String, String, String)] = [
                (.post, "workspaces", #"{"name": 5}"#, "name"),
                (.patch, "workspaces/\(workspace.id)", #"{"name": ["x"]}"#, "name"),
                (.post, "workspaces/\(workspace.id)/bases", #"{"name": null}"#, "name"),
                (.post, "bases/\(base.id)/tables", #"{"name": "T", "fields": {"Name": "singleLineText"}}"#, "fields"),
                (.post, "bases/\(base.id)/tables", #"{"name": "T", "fields": [{"name": "A", "type": 5}]}"#, "type"),
                (.post, "tables/\(table.id)/records", #"{"fields": 5}"#, "fields"),
                (.patch, "records/\(record.id)", #"{"fields": "Name=y"}"#, "fields"),
                (.post, "tables/\(table.id)/records/batch", #"{"operations": {"op": "create"}}"#, "operations"),
                (.post, "workspaces/\(workspace.id)/members", #"{"user_id": 5, "role": "viewer"}"#, "user_id"),
                (.post, "workspaces/\(workspace.id)/members", #"{"user_id": "usr0", "role": "viewer"}"#, "user_id"),
                (.patch, "workspaces/\(workspace.id)/members/\(user.id)", #"{"role": "boss"}"#, "role"),
                (.post, "tables/\(table.id)/views", #"{"name": "V", "sort": "Name"}"#, "sort"),
                (.post, "auth/login", #"{"email": 1, "password": "x"}"#, "email"),
                (.post, "auth/tokens", #"{"name": "t", "expires_in": "soon"}"#, "expires_in"),
            ]
            for (method, path, body, key) in cases {
                let response = try await client.send(method, path, raw: body)
                let error = expectError(response, .badRequest, .validation, "\(method) \(path) \(body)")
                #expect(
                    error?.message.contains(key) == true,
                    "\(method) \(path): '\(error?.message ?? "")' does not name \(key)"
                )
            }
            #expect(try await client.record(record.id) == record)
            try await Self.expectStillServing(client)
        }
    }

    @Test("a missing body, an empty body, null or a missing key is 400")
    func missingBody() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (workspace, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "x"])
            let paths: [(HTTPRequest.Method, String)] = [
                (.post, "workspaces"), (.patch, "workspaces/\(workspace.id)"), (.post, "tables/\(table.id)/records"),
                (.patch, "records/\(record.id)"), (.put, "records/\(record.id)"),
                (.post, "tables/\(table.id)/records/batch"),
                (.post, "auth/login"),
            ]
            for (method, path) in paths {
                expectError(
                    try await client.send(method, path),
                    .badRequest,
                    .validation,
                    "\(method) \(path) without a body"
                )
                expectError(
                    try await client.send(method, path, raw: ""),
                    .badRequest,
                    .validation,
                    "\(method) \(path) empty"
                )
                expectError(
                    try await client.send(method, path, raw: "null"),
                    .badRequest,
                    .validation,
                    "\(method) \(path) null"
                )
            }
            let missingKey = try await client.send(.post, "workspaces", raw: "{}")
            #expect(expectError(missingKey, .badRequest, .validation)?.message.contains("name") == true)
            let missingFields = try await client.send(.post, "tables/\(table.id)/records", raw: #"{"field": {}}"#)
            #expect(expectError(missingFields, .badRequest, .validation)?.message.contains("fields") == true)
            #expect(try await client.record(record.id) == record)
            try await Self.expectStillServing(client)
        }
    }

    @Test("a body over the limit is 413 PAYLOAD_TOO_LARGE, and the server keeps serving")
    func oversize() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let before = try await client.stats()
            let big = String(repeating: "a", count: 300 * 1024)
            let workspace = try await client.send(.post, "workspaces", raw: #"{"name": "\#(big)"}"#)
            expectError(workspace, .contentTooLarge, .payloadTooLarge, "workspace")
            try await Self.expectStillServing(client)
            let record = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": .string(big)])
            )
            expectError(record, .contentTooLarge, .payloadTooLarge, "record")
            try await Self.expectStillServing(client)
            // Just under the limit is read and judged on its content.
            let notes = String(repeating: "b", count: 200 * 1024)
            let fits = try await client.send(
                .post,
                "tables/\(table.id)/records",
                json: RecordFieldsRequest(fields: ["Name": .string(notes)])
            )
            #expect(fits.status == .created)
            let after = try await client.stats()
            #expect(after.records == before.records + 1)
        }
    }

    @Test("malformed or unknown ids in paths are 404 NOT_FOUND")
    func malformedIDs() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let (_, _, table) = try await client.scaffold()
            let record = try await client.createRecord(in: table.id, ["Name": "x"])
            let attempts: [(HTTPRequest.Method, String)] = [
                (.get, "records/abc"), (.get, "records/rec123"), (.get, "records/\(record.id)x"),
                (.get, "tables/\(record.id)"), (.get, "records/\(table.id)"), (.get, "workspaces/wsp%20%20"),
                (.patch, "records/rec!!!!!!!!!!!!!!"), (.delete, "views/xyz"), (.delete, "fields/\(table.id)"),
                (.get, "bases/app0000000000000/tables"), (.get, "tables/\(TableID.generate())/records"),
                (.get, "records/\(RecordID.generate())"), (.delete, "workspaces/\(WorkspaceID.generate())"),
                (.get, "nope"), (.get, "/nope"),
            ]
            for (method, path) in attempts {
                let response =
                    method == .patch
                    ? try await client.send(method, path, json: RecordFieldsRequest(fields: ["Name": "y"]))
                    : try await client.send(method, path)
                expectError(response, .notFound, .notFound, "\(method) \(path)")
            }
            #expect(try await client.record(record.id) == record)
            try await Self.expectStillServing(client)
        }
    }

    @Test("a bad Idempotency-Key (too long, blank, or with spaces) is 400; 255 visible characters are fine")
    func badIdempotencyKey() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let before = try await client.stats()
            for key in [String(repeating: "k", count: 256), "two words", " "] {
                let response = try await client.send(
                    .post,
                    "workspaces",
                    json: CreateWorkspaceRequest(name: "W"),
                    headers: [.idempotencyKey: key]
                )
                expectError(response, .badRequest, .validation, "key of \(key.count)")
            }
            #expect(try await client.stats().workspaces == before.workspaces)
            let longest = try await client.send(
                .post,
                "workspaces",
                json: CreateWorkspaceRequest(name: "W"),
                headers: [.idempotencyKey: String(repeating: "k", count: 255)]
            )
            #expect(longest.status == .created)
            try await Self.expectStillServing(client)
        }
    }

    @Test("errors carry request_id equal to X-Request-ID; a sane caller id is echoed, a bad one replaced")
    func requestIDs() async throws {
        try await Harness.withServer { api, _ in
            let (client, _) = try await api.register()
            let echoed = try await client.send(.get, "records/nope", headers: [.requestID: "trace-123_abc.def"])
            #expect(expectError(echoed, .notFound, .notFound)?.requestID == "trace-123_abc.def")
            let unsafe = try await client.send(.get, "records/nope", headers: [.requestID: "bad id; drop"])
            let replaced = expectError(unsafe, .notFound, .notFound)
            #expect(replaced?.requestID != "bad id; drop")
            let tooLong = try await client.send(
                .get,
                "records/nope",
                headers: [.requestID: String(repeating: "r", count: 200)]
            )
            #expect(expectError(tooLong, .notFound, .notFound)?.requestID?.count ?? 0 < 200)
            // Successful answers carry one too, and ids differ between requests.
            let first = try await client.send(.get, "users/me")
            let second = try await client.send(.get, "users/me")
            #expect(first.headers[.requestID] != nil)
            #expect(first.headers[.requestID] != second.headers[.requestID])
            // Unauthenticated and forbidden answers follow the same shape.
            expectError(try await api.send(.get, "workspaces"), .unauthorized, .auth)
            expectError(
                try await api.authorized("garbage").send(.post, "workspaces", json: CreateWorkspaceRequest(name: "W")),
                .unauthorized,
                .auth
            )
        }
    }
}
