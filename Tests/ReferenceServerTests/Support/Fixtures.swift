import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PyAirtableModels
import Testing

@testable import ReferenceServer

// Small helpers shared by the server test suites, on top of `Harness.swift`.

/// Percent-encodes a query value: formulas carry spaces, braces, quotes and commas.
func queryValue(_ value: String) -> String {
    let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    return value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
}

/// Checks an error answer: its status and type, and the invariants every error body has — `code`
/// equal to the HTTP status, a message, and `request_id` equal to the `X-Request-ID` header.
@discardableResult
func expectError(
    _ response: APIResponse,
    _ status: HTTPResponse.Status,
    _ type: ErrorType,
    _ comment: @autoclosure () -> String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) -> APIErrorDetail? {
    #expect(response.status == status, "\(comment()) \(response.text)", sourceLocation: sourceLocation)
    guard let body = response.error else {
        Issue.record(
            "no error body: \(comment()) \(response.status.code) \(response.text)",
            sourceLocation: sourceLocation
        )
        return nil
    }
    #expect(body.error.type == type, "\(comment()) \(response.text)", sourceLocation: sourceLocation)
    #expect(body.error.code == Int(response.status.code), "\(comment())", sourceLocation: sourceLocation)
    #expect(!body.error.message.isEmpty, "\(comment())", sourceLocation: sourceLocation)
    let header = response.headers[.requestID]
    #expect(header?.isEmpty == false, "\(comment()) no X-Request-ID header", sourceLocation: sourceLocation)
    #expect(
        body.error.requestID == header,
        "\(comment()) request_id differs from X-Request-ID",
        sourceLocation: sourceLocation
    )
    return body.error
}

extension API {
    /// Adds `user` to `workspace` with `role` (the caller must be an owner).
    @discardableResult
    func addMember(
        _ workspace: WorkspaceID,
        user: UserID,
        role: Role,
        sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws -> Member
    {
        try await call(
            .post,
            "workspaces/\(workspace)/members",
            json: AddMemberRequest(userID: user, role: role),
            expect: .created,
            as: Member.self,
            sourceLocation: sourceLocation
        )
    }

    /// `GET /stats`: counts over the whole server, and the newest event seq.
    func stats() async throws -> ServerStats {
        try await call(.get, "stats", as: ServerStats.self)
    }

    /// `GET /records/{id}`.
    func record(
        _ id: RecordID,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws
        -> PyAirtableModels.Record
    {
        try await call(.get, "records/\(id)", as: PyAirtableModels.Record.self, sourceLocation: sourceLocation)
    }

    /// `GET /tables/{id}`.
    func table(_ id: TableID) async throws -> PyAirtableModels.Table {
        try await call(.get, "tables/\(id)", as: PyAirtableModels.Table.self)
    }

    /// One page of `GET /tables/{id}/records?…`; `query` is the raw query string (already encoded).
    func recordsPage(
        _ table: TableID,
        _ query: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws -> Page<PyAirtableModels.Record>
    {
        try await call(
            .get,
            "tables/\(table)/records\(query.isEmpty ? "" : "?\(query)")",
            as: Page<PyAirtableModels.Record>.self,
            sourceLocation: sourceLocation
        )
    }

    /// Every record of a query, following `next_cursor` to the end.
    func allRecords(
        _ table: TableID,
        _ query: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws -> [PyAirtableModels.Record]
    {
        var records: [PyAirtableModels.Record] = []
        var cursor: String?
        repeat {
            var parts = query.isEmpty ? [] : [query]
            if let cursor { parts.append("cursor=\(queryValue(cursor))") }
            let page = try await recordsPage(table, parts.joined(separator: "&"), sourceLocation: sourceLocation)
            records += page.data
            cursor = page.nextCursor
        } while cursor != nil
        return records
    }

    /// Creates records through the batch route, 100 at a time, and returns them in order.
    func seed(
        _ table: TableID,
        _ rows: [[String: FieldValue]],
        sourceLocation: SourceLocation = #_sourceLocation
    )
        async throws -> [PyAirtableModels.Record]
    {
        var created: [PyAirtableModels.Record] = []
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + BatchRequest.maximumOperations, rows.count)]
            let response = try await call(
                .post,
                "tables/\(table)/records/batch",
                json: BatchRequest(operations: chunk.map { .create(fields: $0) }),
                as: BatchResponse.self,
                sourceLocation: sourceLocation
            )
            for result in response.results {
                if case .record(let record) = result { created.append(record) }
            }
            start += BatchRequest.maximumOperations
        }
        return created
    }

    /// Runs `body` with `count` more connections to the same server, authorized as this client.
    ///
    /// The harness client is one HTTP/1.1 connection, and the server answers the requests of one
    /// connection one after another; tests that need truly concurrent requests use several.
    func withConnections<T: Sendable>(
        _ count: Int,
        _ body: @Sendable ([Connection]) async throws -> T
    ) async throws -> T {
        let port = try #require(client.port)
        let connections = (0..<count).map { _ in
            let client = TestClient(host: "localhost", port: port, configuration: .init(timeout: .seconds(60)))
            client.connect()
            return Connection(client: client, token: token)
        }
        do {
            let value = try await body(connections)
            for connection in connections { try? await connection.client.shutdown() }
            return value
        } catch {
            for connection in connections { try? await connection.client.shutdown() }
            throw error
        }
    }
}

/// A further connection to the live server (see ``API/withConnections(_:_:)``).
struct Connection: Sendable {
    let client: TestClient
    var token: String?

    func authorized(_ token: String) -> Connection { Connection(client: client, token: token) }

    @discardableResult
    func send(
        _ method: HTTPRequest.Method,
        _ path: String,
        raw: String? = nil,
        headers: HTTPFields = [:]
    ) async throws -> APIResponse {
        var headers = headers
        if let token, headers[.authorization] == nil { headers[.authorization] = "Bearer \(token)" }
        if raw != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        headers[.connection] = "keep-alive"
        let uri = path.hasPrefix("/") ? path : "/api/v1/\(path)"
        let response = try await client.execute(
            .init(
                uri,
                method: method,
                authority: "localhost",
                headers: headers,
                body: raw.map { ByteBuffer(string: $0) }
            )
        )
        return APIResponse(
            status: response.status,
            headers: response.headers,
            body: Data((response.body ?? ByteBuffer()).readableBytesView)
        )
    }

    @discardableResult
    func send(
        _ method: HTTPRequest.Method,
        _ path: String,
        json: some Encodable,
        headers: HTTPFields = [:]
    ) async throws -> APIResponse {
        let data = try JSONCoding.encoder.encode(json)
        return try await send(method, path, raw: String(decoding: data, as: UTF8.self), headers: headers)
    }
}

/// The number in a cell, if it holds one.
func number(_ value: FieldValue?) -> Double? {
    if case .number(let number)? = value { return number }
    return nil
}
