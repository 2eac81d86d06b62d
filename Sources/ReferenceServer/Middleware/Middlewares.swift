import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PyAirtableModels

/// Gives each request an id (the caller's `X-Request-ID` when it is sane, else a new one) and echoes
/// it on the response. Log lines about a request carry it as `request_id` (set where they are
/// written: putting it in the logger's metadata costs every request a copy of that metadata).
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        if let incoming = request.headers[.requestID], incoming.count <= 128,
            incoming.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        {
            context.requestID = incoming
        } else {
            context.requestID = RequestIDs.next()
        }
        var response = try await next(request, context)
        response.headers[.requestID] = context.requestID
        return response
    }
}

/// Turns every error into the contract's error body, and logs server failures.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let serverError = Self.serverError(for: error)
            // A 503 is the server shedding load it chose not to queue (it says when to retry); logging
            // each as a failure would turn a burst of requests into a burst of error lines.
            if serverError.status.code >= 500 && serverError.status != .serviceUnavailable {
                context.logger.error(
                    "request failed",
                    metadata: [
                        "error": "\(error)", "path": "\(request.uri.path)", "request_id": "\(context.requestID)",
                    ]
                )
            }
            return Self.response(for: serverError, requestID: context.requestID)
        }
    }

    static func serverError(for error: any Error) -> ServerError {
        switch error {
        case let error as ServerError:
            return error
        case let error as DecodingError:
            return ServerError.badRequest(Self.describe(error))
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return ServerError(.notFound, .notFound, error.body ?? "no such route")
            case .contentTooLarge:
                return ServerError(.contentTooLarge, .payloadTooLarge, error.body ?? "the request body is too large")
            case .methodNotAllowed:
                return ServerError(.methodNotAllowed, .validation, error.body ?? "method not allowed")
            case let status where status.code < 500:
                return ServerError(status, .validation, error.body ?? status.reasonPhrase)
            default:
                return ServerError(error.status, .server, error.body ?? "the server failed")
            }
        default:
            return ServerError(.internalServerError, .server, "the server failed to handle this request")
        }
    }

    static func response(for error: ServerError, requestID: String) -> Response {
        let body = ErrorResponse(
            error: APIErrorDetail(
                type: error.type,
                code: Int(error.status.code),
                message: error.message,
                requestID: requestID,
                position: error.position,
                field: error.field
            ),
            current: error.current
        )
        var headers = error.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let data = (try? JSONCoding.encoder.encode(body)) ?? Data()
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A decoding error as a sentence that names the offending key path.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let joined = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return joined.isEmpty ? "the body" : "'\(joined)'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) has the wrong type: expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) is null: expected \(type)"
        case .keyNotFound(let key, let context):
            return "missing key '\(key.stringValue)' in \(path(context.codingPath))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "the body could not be decoded"
        }
    }
}

/// Reads request bodies up to the configured limit (413 past it), and for writes that carry an
/// `Idempotency-Key`, binds the key to the caller and a keyed hash of the request (the body can
/// hold a password, so a plain hash of it must not be stored).
struct BodyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let maximumBodySize: Int
    /// Bodies nested deeper are refused before any decoder walks them (``RequestLimits/maximumJSONDepth``).
    var maximumJSONDepth = 64
    let keys: StorageKeys

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var request = request
        var context = context
        let method = request.method
        guard method == .post || method == .put || method == .patch || method == .delete,
            !FilesController.streamsBody(request)
        else {
            return try await next(request, context)
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maximumBodySize {
            throw ServerError.payloadTooLarge(limit: maximumBodySize)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maximumBodySize)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ServerError.payloadTooLarge(limit: maximumBodySize)
        }
        request.body = .init(buffer: buffer)
        if let offset = JSONNesting.offsetPastDepth(maximumJSONDepth, in: buffer.readableBytesView) {
            throw ServerError.badRequest(
                "the JSON body nests deeper than \(maximumJSONDepth) levels (maximumJSONDepth) at byte \(offset)"
            )
        }
        if let key = request.headers[.idempotencyKey] {
            // Exactly the document's pattern `^[!-~]{1,255}$`: visible ASCII, no spaces or controls.
            guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
                throw ServerError.badRequest("Idempotency-Key must be 1 to 255 visible ASCII characters")
            }
            var hasher = SHA256()
            hasher.update(data: Data(method.rawValue.utf8))
            hasher.update(data: Data(" \(request.uri.path)\n".utf8))
            hasher.update(data: Self.canonicalBody(Data(buffer.readableBytesView)))
            let hash = keys.requestHash(digest: Array(hasher.finalize()))
            // Writes need a user; the key is bound to it once authentication ran.
            let principal = context.principal?.userID.rawValue ?? "anonymous"
            context.idempotency = IdempotencyClaim(principal: principal, key: key, requestHash: hash)
        }
        return try await next(request, context)
    }
}

extension BodyMiddleware {
    /// JSON bodies re-encoded with sorted keys, so a retry whose encoder ordered keys differently
    /// still matches its idempotency key; anything else as sent.
    static func canonicalBody(_ data: Data) -> Data {
        guard let value = try? JSONCoding.decoder.decode(JSONValue.self, from: data),
            let canonical = try? JSONCoding.encoder.encode(value)
        else { return data }
        return canonical
    }
}

/// Authenticates `Authorization: Bearer …` (access JWT or personal access token). A request with a
/// bad token is refused; a request without one goes on unauthenticated (public routes).
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let auth: Authenticator

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            return try await next(request, context)
        }
        guard header.utf8.count > 7,
            header.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 | 0x20 == $1 })
        else {
            throw ServerError.unauthorized("the Authorization header must be 'Bearer <token>'")
        }
        var rest = header.dropFirst(7)
        while let first = rest.first, first == " " || first == "\t" { rest = rest.dropFirst() }
        while let last = rest.last, last == " " || last == "\t" { rest = rest.dropLast() }
        let token = String(rest)
        guard let principal = try await auth.authenticate(bearer: token) else {
            throw ServerError.unauthorized("the access token is invalid or expired")
        }
        var context = context
        context.principal = principal
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let requestID = Self(HeaderName.requestID)!
    static let idempotencyKey = Self(HeaderName.idempotencyKey)!
    static let idempotentReplayed = Self(HeaderName.idempotentReplayed)!
    static let lastEventID = Self(HeaderName.lastEventID)!
}
