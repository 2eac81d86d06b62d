import Foundation

/// An HTTP request kept in the offline queue, exactly as it will be sent on replay.
///
/// Only what replay needs is kept: the method, the path (relative to the API root, such as
/// `/api/v1/records/rec…`), the query, the headers that change the request's meaning (`If-Match`; never
/// credentials, which are recomputed when the request is sent) and the JSON body bytes.
///
/// ```swift
/// let request = QueuedRequest(
///     method: "PATCH",
///     path: "/api/v1/records/\(recordID)",
///     headers: ["If-Match": "\"3\""],
///     body: Data(#"{"fields":{"Name":"Ada"}}"#.utf8)
/// )
/// ```
public struct QueuedRequest: Sendable, Hashable, Codable {
    /// One query parameter; order and repeats are kept.
    public struct QueryItem: Sendable, Hashable, Codable {
        /// The parameter's name.
        public var name: String
        /// The parameter's value.
        public var value: String

        /// Makes a query parameter.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The HTTP method, upper case: `POST`, `PATCH`, `PUT` or `DELETE`.
    public var method: String
    /// The path, starting with `/`.
    public var path: String
    /// The query parameters.
    public var query: [QueryItem]
    /// The headers to send with the request, such as `If-Match`.
    public var headers: [String: String]
    /// The JSON body, if any.
    public var body: Data?
    /// What the write's fields were at the version it started from (the version its `If-Match` names),
    /// as JSON, so that a 412 on replay can be settled by a three-way merge. Kept, never sent.
    public var conflictBase: Data?

    /// Makes a request.
    /// - Parameters:
    ///   - method: The HTTP method; it is upper-cased.
    ///   - path: The path, starting with `/`.
    ///   - query: The query parameters.
    ///   - headers: The headers that matter on replay (`If-Match`); not credentials.
    ///   - body: The JSON body.
    ///   - conflictBase: The fields at the version the write started from, as JSON; kept, never sent.
    public init(
        method: String,
        path: String,
        query: [QueryItem] = [],
        headers: [String: String] = [:],
        body: Data? = nil,
        conflictBase: Data? = nil
    ) {
        self.method = method.uppercased()
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.conflictBase = conflictBase
    }

    /// The bytes this request occupies in the queue, as counted against
    /// ``OfflineQueue/Configuration/maximumBytes``.
    public var size: Int {
        method.utf8.count + path.utf8.count + (body?.count ?? 0) + (conflictBase?.count ?? 0)
            + query.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            + headers.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
    }

    /// Every temporary id the request names.
    var temporaryIDMentions: Set<TemporaryID> {
        var found = TemporaryID.mentions(in: path)
        for item in query {
            found.formUnion(TemporaryID.mentions(in: item.value))
            found.formUnion(TemporaryID.mentions(in: item.name))
        }
        for value in headers.values {
            found.formUnion(TemporaryID.mentions(in: value))
        }
        if let body {
            found.formUnion(TemporaryID.mentions(in: body))
        }
        return found
    }

    /// This request with every occurrence of `temporaryID` replaced by `serverID`: in the path, the
    /// query, the headers and anywhere in the JSON body (linked-record arrays included).
    func replacing(_ temporaryID: TemporaryID, with serverID: String) -> QueuedRequest {
        var request = self
        request.path = temporaryID.replacingOccurrences(in: path, with: serverID)
        request.query = query.map {
            QueryItem(
                name: temporaryID.replacingOccurrences(in: $0.name, with: serverID),
                value: temporaryID.replacingOccurrences(in: $0.value, with: serverID)
            )
        }
        request.headers = headers.mapValues { temporaryID.replacingOccurrences(in: $0, with: serverID) }
        if let body, let rewritten = temporaryID.replacingOccurrences(in: Array(body), with: serverID) {
            request.body = Data(rewritten)
        }
        return request
    }
}
