import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PyAirtableModels

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
            if AirtableErrors.covers(request.uri.path) {
                return AirtableErrors.response(for: serverError, requestID: context.requestID)
            }
            return Self.response(for: serverError, requestID: context.requestID)
        }
    }

    static func serverError(for error: any Error) -> ServerError {
        switch error {
        case let error as ServerError:
            return error
        case let error as StorageError:
            return serverError(for: error)
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

    /// The wire error of a storage error: the one place a ``StorageError`` becomes a status, a code,
    /// a message and headers.
    static func serverError(for error: StorageError) -> ServerError {
        switch error {
        case .notFound(let what):
            return .notFound(what)
        case .invalid(let message, let field, let position):
            return .validation(message, field: field, position: position)
        case .conflict(let message):
            return .conflict(message)
        case .forbidden(let message):
            return .forbidden(message)
        case .unauthenticated:
            return .unauthorized("authentication required")
        case .versionMismatch(let current, let version):
            return ServerError(
                .preconditionFailed,
                .conflict,
                "the resource changed: it is at version \(version)",
                current: current,
                headers: [.eTag: VersionTag.format(version)]
            )
        case .idempotencyKeyReused(let key):
            return .validation("Idempotency-Key '\(key)' was already used with a different request")
        case .idempotentAnswerUnreadable(let key, let reason):
            return .conflict(
                "the stored answer of Idempotency-Key '\(key)' cannot be read (\(reason)); send the request with a new key"
            )
        case .filterScanLimit(let reason):
            return .filterScanLimit(reason)
        case .uploadQuotaExceeded(let used, let quota):
            return .uploadQuotaExceeded(used: used, quota: quota)
        case .eventsTrimmed(let since, let trimmedThrough):
            return ServerError(
                .gone,
                .resyncRequired,
                "events after \(since) are no longer retained (the log starts after \(trimmedThrough)); refetch and resume from the newest seq"
            )
        case .unavailable(let reason, let retryAfter):
            return ServerError(
                .serviceUnavailable,
                .server,
                "the database is unavailable (\(reason)); retry in \(retryAfter) s, with the same Idempotency-Key "
                    + "for a write (it is then applied once, whether or not this attempt reached the database)",
                headers: [.retryAfter: String(retryAfter)]
            )
        case .inOperation(let index, let error):
            var mapped = serverError(for: error)
            mapped.message = "operation \(index): \(mapped.message)"
            return mapped
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
