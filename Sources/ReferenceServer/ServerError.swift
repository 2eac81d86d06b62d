import Foundation
import HTTPTypes
import Hummingbird
import PyAirtableModels

/// An error the server answers with the contract's error body.
///
/// Handlers throw it (stores throw ``StorageError``); ``ErrorMiddleware`` turns it (and any other
/// error, a ``StorageError`` included) into `{"error": {"type", "code", "message", "request_id"}}`.
public struct ServerError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var type: ErrorType
    public var message: String
    public var position: Int?
    public var field: String?
    /// For a 412: the resource as it is now.
    public var current: JSONValue?
    public var headers: HTTPFields
    /// Airtable's error type for this error under `/v0`, when the status alone does not say it (see
    /// `AirtableErrors`).
    public var airtableType: String?

    public init(
        _ status: HTTPResponse.Status,
        _ type: ErrorType,
        _ message: String,
        position: Int? = nil,
        field: String? = nil,
        current: JSONValue? = nil,
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.type = type
        self.message = message
        self.position = position
        self.field = field
        self.current = current
        self.headers = headers
    }

    public var description: String { "\(status.code) \(type.rawValue): \(message)" }

    static func validation(_ message: String, field: String? = nil, position: Int? = nil) -> ServerError {
        ServerError(.unprocessableContent, .validation, message, position: position, field: field)
    }

    static func badRequest(_ message: String) -> ServerError {
        ServerError(.badRequest, .validation, message)
    }

    static func notFound(_ what: String) -> ServerError {
        ServerError(.notFound, .notFound, "\(what) not found")
    }

    static func forbidden(_ message: String) -> ServerError {
        ServerError(.forbidden, .forbidden, message)
    }

    static func unauthorized(_ message: String) -> ServerError {
        ServerError(.unauthorized, .auth, message, headers: [.wwwAuthenticate: "Bearer"])
    }

    static func conflict(_ message: String) -> ServerError {
        ServerError(.conflict, .conflict, message)
    }

    static func preconditionFailed(current: some Encodable, version: Int) -> ServerError {
        ServerError(
            .preconditionFailed,
            .conflict,
            "the resource changed: it is at version \(version)",
            current: try? JSONValue(encoding: current),
            headers: [.eTag: VersionTag.format(version)]
        )
    }

    /// A records list whose filter could not be answered within the filter scan limits of
    /// ``RequestLimits``; `reason` names the limit.
    static func filterScanLimit(_ reason: String) -> ServerError {
        ServerError(
            .unprocessableContent,
            .validation,
            "the filter was stopped: \(reason). Part of it cannot run in SQLite (arithmetic, &, "
                + "IS_BEFORE, IS_AFTER, DATETIME_PARSE, comparisons between two fields) and is checked row by "
                + "row; narrow it with comparisons of fields to constants, such as AND({Status} = 'Done', …)",
            field: "filter"
        )
    }

    /// 413 for an upload that does not fit in what is left of the user's upload quota.
    static func uploadQuotaExceeded(used: Int64, quota: Int64) -> ServerError {
        ServerError(
            .contentTooLarge,
            .payloadTooLarge,
            "the upload does not fit in your upload quota: your files take \(used) of your \(quota) bytes "
                + "(\(max(0, quota - used)) left); delete files to make room"
        )
    }

    static func payloadTooLarge(limit: Int) -> ServerError {
        ServerError(.contentTooLarge, .payloadTooLarge, "the request body is larger than \(limit) bytes")
    }
}
