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
}
