import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PyAirtableModels

/// Airtable's error body, `{"error": {"type": "…", "message": "…"}}`, which Airtable's clients read
/// (pyairtable appends it to the exception it raises; airtable.js reads `error.type`): every answer
/// under `/v0` that is an error has this shape, whatever raised it.
enum AirtableErrors {
    /// Whether `path` is under Airtable's API.
    static func covers(_ path: String) -> Bool {
        path == "/v0" || path.hasPrefix("/v0/")
    }

    /// Airtable's type for an error: the one the error names, or the usual one for its status.
    static func type(of error: ServerError) -> String {
        if let type = error.airtableType { return type }
        switch error.status.code {
        case 400: return "INVALID_REQUEST_BODY"
        case 401: return "AUTHENTICATION_REQUIRED"
        case 403: return "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        case 404: return "NOT_FOUND"
        case 405: return "METHOD_NOT_ALLOWED"
        case 413: return "REQUEST_TOO_LARGE"
        case 422: return "INVALID_REQUEST_UNKNOWN"
        case 429: return "TOO_MANY_REQUESTS"
        case 503: return "SERVICE_UNAVAILABLE"
        default: return error.status.code >= 500 ? "SERVER_ERROR" : "INVALID_REQUEST_UNKNOWN"
        }
    }

    /// The answer for `error` in Airtable's shape, with the error's headers (`Retry-After`, `Allow`)
    /// and the request id in `X-Request-ID`.
    static func response(for error: ServerError, requestID: String) -> Response {
        struct Body: Encodable {
            struct Detail: Encodable {
                var type: String
                var message: String
            }
            var error: Detail
        }
        var headers = error.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let data =
            (try? JSONEncoder().encode(Body(error: .init(type: type(of: error), message: error.message)))) ?? Data()
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A base or table the caller cannot see, or that does not exist: Airtable does not say which.
    static func modelNotFound(_ message: String) -> ServerError {
        var error = ServerError(.forbidden, .forbidden, message)
        error.airtableType = "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
        return error
    }

    /// An error of Airtable's `type` with `status`.
    static func error(_ status: HTTPResponse.Status, _ type: String, _ message: String) -> ServerError {
        var error = ServerError(
            status,
            status == .notFound ? .notFound : status == .forbidden ? .forbidden : .validation,
            message
        )
        error.airtableType = type
        return error
    }

    /// A request Airtable would refuse without a more specific type (422 `INVALID_REQUEST_UNKNOWN`).
    static func invalidRequest(_ message: String) -> ServerError {
        error(.unprocessableContent, "INVALID_REQUEST_UNKNOWN", message)
    }

    /// A storage error of a v0 record route in Airtable's terms: a record that is not there is
    /// `MODEL_ID_NOT_FOUND`, a role that may not write is `INVALID_PERMISSIONS`, a refused value names
    /// `valueType` (the caller knows whether it was a cell, a formula or an offset).
    static func recordError(_ error: any Error, valueType: String = "INVALID_VALUE_FOR_COLUMN") -> any Error {
        guard let storage = error as? StorageError else { return error }
        var prefix = ""
        var inner = storage
        if case .inOperation(let index, let wrapped) = storage {
            prefix = "record \(index): "
            inner = wrapped
        }
        switch inner {
        case .notFound(let what):
            return Self.error(.notFound, "MODEL_ID_NOT_FOUND", prefix + "\(what) not found")
        case .forbidden(let message):
            return Self.error(.forbidden, "INVALID_PERMISSIONS", prefix + message)
        case .invalid(let message, _, _):
            return Self.error(.unprocessableContent, valueType, prefix + message)
        default:
            var mapped = ErrorMiddleware.serverError(for: storage)
            mapped.airtableType = nil
            return mapped
        }
    }
}
