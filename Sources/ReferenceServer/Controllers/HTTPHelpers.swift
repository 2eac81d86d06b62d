import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PyAirtableModels

extension Request {
    /// Decodes the (already collected) JSON body as `type`; malformed input is a 400 naming the key.
    func decodeJSON<T: Decodable>(as type: T.Type) async throws -> T {
        let buffer = try await body.collect(upTo: .max)
        guard buffer.readableBytes > 0 else {
            throw ServerError.badRequest("the request needs a JSON body")
        }
        return try JSONCoding.decoder.decode(T.self, from: Data(buffer.readableBytesView))
    }

    /// The cells of a record write's body, `{"fields": {…}}`: plain values by ``RecordFieldsParser``,
    /// anything else by `JSONDecoder`.
    func decodeRecordFields() async throws -> [String: FieldValue] {
        let buffer = try await body.collect(upTo: .max)
        guard buffer.readableBytes > 0 else {
            throw ServerError.badRequest("the request needs a JSON body")
        }
        if let fields = RecordFieldsParser.parse(buffer.readableBytesView) { return fields }
        return try JSONCoding.decoder.decode(RecordFieldsRequest.self, from: Data(buffer.readableBytesView)).fields
    }

    /// The version named by `If-Match`, if any: `*`, `"3"`, `W/"3"` or `3`, with at most 18 digits
    /// (the document's pattern, so whatever it allows parses and whatever it refuses is a 400).
    func ifMatchVersion() throws -> Int? {
        guard let value = headers[.ifMatch] else { return nil }
        var text = Substring(value.trimmingCharacters(in: .whitespaces))
        if text == "*" { return nil }
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
        guard (1...18).contains(text.utf8.count), text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let version = Int(text)
        else {
            throw ServerError.badRequest("If-Match must be a version ETag such as \"3\"")
        }
        return version
    }

    /// Whether `If-None-Match` names the given version (so a 304 can answer).
    func matchesNoneMatch(version: Int) -> Bool {
        guard let value = headers[.ifNoneMatch] else { return false }
        return value.split(separator: ",").contains { VersionTag.parse(String($0)) == version || $0 == "*" }
    }
}

extension Response {
    /// A JSON answer in the contract's encoding.
    static func json(
        _ value: some Encodable,
        status: HTTPResponse.Status = .ok,
        eTag: String? = nil
    ) throws -> Response {
        let data = try JSONCoding.encoder.encode(value)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let eTag { headers[.eTag] = eTag }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A JSON answer already encoded.
    static func jsonBytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, eTag: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let eTag { headers[.eTag] = eTag }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A list answer with a weak ETag digesting its bytes; a request whose `If-None-Match` names it
    /// gets a bodiless 304, so a client revalidating an unchanged list pays no transfer.
    static func listJSON(encoded bytes: [UInt8], request: Request) -> Response {
        let tag = "W/\"" + Hex.encode(SHA256.hash(data: bytes).prefix(16)) + "\""
        if let condition = request.headers[.ifNoneMatch],
            condition.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == tag })
        {
            return Response(status: .notModified, headers: [.eTag: tag])
        }
        return jsonBytes(bytes, eTag: tag)
    }

    /// A list answer encoded in the contract's encoding, with a content ETag (see ``listJSON(encoded:request:)``).
    static func listJSON(_ value: some Encodable, request: Request) throws -> Response {
        listJSON(encoded: Array(try JSONCoding.encoder.encode(value)), request: request)
    }

    /// 304 for a conditional GET whose `If-None-Match` names the current version.
    static func notModified(version: Int) -> Response {
        Response(status: .notModified, headers: [.eTag: VersionTag.format(version)])
    }

    /// The answer of a mutation, fresh or replayed.
    static func stored(_ stored: StoredResponse) -> Response {
        var headers: HTTPFields = [:]
        let status = HTTPResponse.Status(code: stored.status)
        if let eTag = stored.eTag { headers[.eTag] = eTag }
        if stored.replayed { headers[.idempotentReplayed] = "true" }
        if stored.status == 204 {
            return Response(status: status, headers: headers)
        }
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: stored.body)))
    }

    static func stored<T>(_ result: WriteResult<T>) -> Response {
        stored(result.response)
    }
}

extension AppRequestContext {
    /// The mutation context of this request.
    func write(now: Date) -> WriteContext {
        WriteContext(actor: principal?.userID, now: now, idempotency: boundIdempotency)
    }

    /// The idempotency claim bound to the authenticated user (``IdempotencyMiddleware`` ran first).
    private var boundIdempotency: IdempotencyClaim? {
        guard var claim = idempotency else { return nil }
        if let principal { claim.principal = principal.userID.rawValue }
        return claim
    }

    /// A path parameter parsed as a typed id; a malformed id is a 404, as no such resource exists.
    func id<Kind>(_ name: String, _ what: String) throws -> Identifier<Kind> {
        guard let raw = parameters.get(name), let id = Identifier<Kind>(raw) else {
            throw ServerError.notFound(what)
        }
        return id
    }
}
