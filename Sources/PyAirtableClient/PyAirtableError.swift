import Foundation
import HTTPTypes
import PyAirtableModels

/// Every error the SDK throws.
///
/// Compare with the static members to branch on the kind; the properties carry the details: the
/// HTTP status, the wire error type and message, the server's request id, the underlying error.
///
/// ```swift
/// do {
///     try await client.records.update(id, fields: ["Score": 4], ifVersion: 3)
/// } catch let error as PyAirtableError where error == .preconditionFailed {
///     let current = error.currentRecord
/// }
/// ```
public struct PyAirtableError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: String, Sendable {
        case validation, unauthorized, forbidden, notFound, conflict, preconditionFailed, payloadTooLarge
        case rateLimited, resyncRequired, server, unexpectedStatus
        case transport, timeout, circuitOpen, cancelled, decoding, responseTooLarge, notAuthenticated
        case invalidArgument, notCached, queuedOffline
    }

    private let code: Code
    /// The HTTP status, when the server answered.
    public private(set) var status: Int?
    /// The error body's type, when the server answered with one.
    public private(set) var errorType: ErrorType?
    /// What went wrong, in the server's words or ours.
    public private(set) var message: String
    /// The server's request id, for support and logs.
    public private(set) var requestID: String?
    /// The call that failed.
    public private(set) var operation: ClientOperation?
    /// The error underneath, such as the network error.
    public private(set) var underlying: (any Error)?
    /// For a 412: the resource as it is now on the server.
    public private(set) var current: JSONValue?
    /// The offending field or formula position the server named.
    public private(set) var field: String?
    public private(set) var position: Int?
    /// How long the server asked us to wait (`Retry-After`).
    public private(set) var retryAfter: Duration?
    /// For ``queuedOffline``: the queued mutation's id in the offline queue (the write pipeline's
    /// signal; callers get a ``QueuedWrite``).
    private(set) var queuedMutationID: Int64?
    /// For ``queuedOffline`` of a create: the temporary id (`tmp_…`) the record has until replay.
    private(set) var temporaryID: String?

    private init(code: Code, message: String = "") {
        self.code = code
        self.message = message
    }

    /// Kinds equal when their codes are equal, so `error == .notFound` reads naturally.
    public static func == (lhs: PyAirtableError, rhs: PyAirtableError) -> Bool { lhs.code == rhs.code }

    // MARK: Kinds

    /// 400/422: the request was malformed or broke a rule.
    public static let validation = PyAirtableError(code: .validation)
    /// 401: missing, bad or expired credentials.
    public static let unauthorized = PyAirtableError(code: .unauthorized)
    /// 403: the role does not allow this.
    public static let forbidden = PyAirtableError(code: .forbidden)
    /// 404: no such resource, or not visible to this user.
    public static let notFound = PyAirtableError(code: .notFound)
    /// 409: the change conflicts with the current state (a duplicate, the last owner).
    public static let conflict = PyAirtableError(code: .conflict)
    /// 412: the resource changed since the version the write named; see ``current``.
    public static let preconditionFailed = PyAirtableError(code: .preconditionFailed)
    /// 413: the body was too large for the server.
    public static let payloadTooLarge = PyAirtableError(code: .payloadTooLarge)
    /// 429: the server asked to slow down.
    public static let rateLimited = PyAirtableError(code: .rateLimited)
    /// 410: the event position is older than the server's retained log.
    public static let resyncRequired = PyAirtableError(code: .resyncRequired)
    /// 5xx: the server failed.
    public static let server = PyAirtableError(code: .server)
    /// Another status the SDK did not expect.
    public static let unexpectedStatus = PyAirtableError(code: .unexpectedStatus)
    /// The server could not be reached (refused, reset, DNS, TLS).
    public static let transportFailure = PyAirtableError(code: .transport)
    /// The server did not answer in time.
    public static let timeout = PyAirtableError(code: .timeout)
    /// The service's circuit breaker is open: recent calls failed, so this one was not sent.
    public static let circuitOpen = PyAirtableError(code: .circuitOpen)
    /// The task was cancelled.
    public static let cancelled = PyAirtableError(code: .cancelled)
    /// The answer could not be decoded.
    public static let decodingFailed = PyAirtableError(code: .decoding)
    /// The answer was larger than the configured limit.
    public static let responseTooLarge = PyAirtableError(code: .responseTooLarge)
    /// The client has no credentials for a call that needs them.
    public static let notAuthenticated = PyAirtableError(code: .notAuthenticated)
    /// An argument was invalid before anything was sent.
    public static let invalidArgument = PyAirtableError(code: .invalidArgument)
    /// A `FetchPolicy.cacheOnly` read found nothing usable in the cache.
    public static let notCached = PyAirtableError(code: .notCached)
    /// The write was kept in the offline queue (on disk, with its idempotency key) and will be applied,
    /// once, when the queue is replayed: thrown only by ``WriteResult/get()`` of a
    /// ``WriteResult/queued(_:)`` result, never by a write itself.
    public static let queuedOffline = PyAirtableError(code: .queuedOffline)

    // MARK: Making errors

    /// The error for an HTTP answer that is not a success, from its error body.
    static func http(_ response: ClientResponse, operation: ClientOperation) -> PyAirtableError {
        let body = try? JSONCoding.decoder.decode(ErrorResponse.self, from: response.data)
        let status = response.status.code
        let code: Code =
            switch status {
            case 400, 422: .validation
            case 401: .unauthorized
            case 403: .forbidden
            case 404: .notFound
            case 409: .conflict
            case 410: .resyncRequired
            case 412: .preconditionFailed
            case 413: .payloadTooLarge
            case 429: .rateLimited
            case 500...599: .server
            default: .unexpectedStatus
            }
        var error = PyAirtableError(
            code: code,
            message: body?.error.message ?? "the server answered \(status) \(response.status.reasonPhrase)"
        )
        error.status = status
        error.errorType = body?.error.type
        error.requestID = body?.error.requestID ?? response.headerFields[.requestID]
        error.operation = operation
        error.current = body?.current
        error.field = body?.error.field
        error.position = body?.error.position
        error.retryAfter = response.headerFields[.retryAfter].flatMap(Self.parseRetryAfter)
        return error
    }

    /// A failure to reach the server, for transports of your own: a timeout when `underlying`
    /// says so, else ``transportFailure``.
    public static func transport(_ underlying: any Error, operation: ClientOperation?) -> PyAirtableError {
        let text = String(describing: underlying)
        let isTimeout =
            text.contains("deadlineExceeded") || text.contains("readTimeout") || text.contains("connectTimeout")
            || text.lowercased().contains("timeout")
        var error = PyAirtableError(
            code: isTimeout ? .timeout : .transport,
            message: isTimeout ? "the server did not answer in time" : "the server could not be reached: \(text)"
        )
        error.underlying = underlying
        error.operation = operation
        return error
    }

    static func decoding(_ underlying: any Error, operation: ClientOperation, requestID: String?) -> PyAirtableError {
        var error = PyAirtableError(code: .decoding, message: "the server's answer could not be decoded: \(underlying)")
        error.underlying = underlying
        error.operation = operation
        error.requestID = requestID
        return error
    }

    static func circuitOpen(service: ServiceName, retryIn: Duration) -> PyAirtableError {
        var error = PyAirtableError(
            code: .circuitOpen,
            message:
                "calls to \(service) are paused after repeated failures; the next try is in \(retryIn.seconds.formatted(.number.precision(.fractionLength(1)))) s"
        )
        error.retryAfter = retryIn
        return error
    }

    static let cancelledError = PyAirtableError(code: .cancelled, message: "the call was cancelled")

    static func responseTooLarge(limit: Int, underlying: any Error) -> PyAirtableError {
        var error = PyAirtableError(code: .responseTooLarge, message: "the answer is larger than \(limit) bytes")
        error.underlying = underlying
        return error
    }

    static func notAuthenticated(_ message: String) -> PyAirtableError {
        PyAirtableError(code: .notAuthenticated, message: message)
    }

    static func invalidArgument(_ message: String) -> PyAirtableError {
        PyAirtableError(code: .invalidArgument, message: message)
    }

    static func queuedOffline(
        mutation: Int64,
        temporaryID: String?,
        operation: ClientOperation,
        cause: PyAirtableError
    ) -> PyAirtableError {
        var error = PyAirtableError(
            code: .queuedOffline,
            message: "the server could not be reached; the write is queued (#\(mutation)) and will be applied on replay"
        )
        error.queuedMutationID = mutation
        error.temporaryID = temporaryID
        error.operation = operation
        error.underlying = cause
        return error
    }

    /// ``queuedOffline`` for a write the caller asked the saved value of.
    static func queuedOffline(_ write: QueuedWrite) -> PyAirtableError {
        var error = PyAirtableError(
            code: .queuedOffline,
            message: "the write is queued (#\(write.mutationID)) and will be applied on replay: \(write.queuedBecause)"
        )
        error.queuedMutationID = write.mutationID
        error.temporaryID = write.temporaryID?.rawValue
        error.underlying = write.reason
        return error
    }

    /// A 404 for a record a write not yet confirmed deletes (or a temporary id nothing pending creates).
    static func pendingNotFound(_ id: RecordID, operation: ClientOperation, deleted: Bool) -> PyAirtableError {
        var error = PyAirtableError(
            code: .notFound,
            message: deleted
                ? "record \(id) is deleted by a write not yet confirmed by the server"
                : "no pending write creates record \(id)"
        )
        error.status = 404
        error.operation = operation
        return error
    }

    static func notCached(_ key: String, operation: ClientOperation) -> PyAirtableError {
        var error = PyAirtableError(code: .notCached, message: "nothing usable is cached for \(key)")
        error.operation = operation
        return error
    }

    /// `Retry-After` as seconds, or as an HTTP date.
    static func parseRetryAfter(_ value: String) -> Duration? {
        if let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            return .milliseconds(Int64(seconds * 1000))
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSinceNow) * 1000))
    }

    // MARK: Reading errors

    /// Whether trying again may succeed: network failures, timeouts, 429, 502, 503, 504 and an open
    /// circuit (later). Never other 4xx.
    public var isRetryable: Bool {
        switch code {
        case .transport, .timeout, .rateLimited, .circuitOpen: true
        case .server: [502, 503, 504].contains(status ?? 0)
        default: false
        }
    }

    /// Whether the server was not reached at all, so a write certainly did not happen... or its
    /// answer was lost. Offline queues treat these as "queue and replay with the same key".
    public var isConnectivityFailure: Bool {
        code == .transport || code == .timeout || code == .circuitOpen
    }

    /// `current` decoded as `type` (for a 412).
    public func current<T: Decodable>(as type: T.Type) throws -> T? {
        try current.map { try $0.decode(as: type) }
    }

    /// For a 412 on a record write: the record as it is now on the server.
    public var currentRecord: Record? { try? current(as: Record.self) }

    /// A short, stable label safe for metrics: `http_404`, `transport`, `circuit_open`.
    public var shortDescription: String {
        switch code {
        case .transport: "transport"
        case .timeout: "timeout"
        case .circuitOpen: "circuit_open"
        case .cancelled: "cancelled"
        case .decoding: "decoding"
        case .responseTooLarge: "response_too_large"
        case .notAuthenticated: "not_authenticated"
        case .invalidArgument: "invalid_argument"
        case .notCached: "not_cached"
        case .queuedOffline: "queued_offline"
        default: "http_\(status ?? 0)"
        }
    }

    /// A sentence fit to show a person.
    public var userMessage: String {
        switch code {
        case .validation: "That was not accepted: \(message)."
        case .unauthorized: "You are not signed in, or your session expired. Sign in again."
        case .forbidden: "Your role does not allow this."
        case .notFound: "That was not found, or you do not have access to it."
        case .conflict: "That conflicts with the current data: \(message)."
        case .preconditionFailed: "Someone else changed this in the meantime. Reload and try again."
        case .payloadTooLarge: "That is too large for the server."
        case .rateLimited: "Too many requests. Wait a moment and try again."
        case .resyncRequired: "The local copy is too far behind and must be reloaded."
        case .server, .unexpectedStatus: "The server had a problem. Try again later."
        case .transport: "The server cannot be reached. Check the connection and the server address."
        case .timeout: "The server did not answer in time. Try again."
        case .circuitOpen: "The server is failing; calls are paused for a moment."
        case .cancelled: "Cancelled."
        case .decoding: "The server's answer was not understood; the SDK and server may be different versions."
        case .responseTooLarge: "The answer was too large."
        case .notAuthenticated: "You are not signed in: \(message)."
        case .invalidArgument: "Invalid input: \(message)."
        case .notCached: "That is not in the local cache, and the cache was the only place to look."
        case .queuedOffline: "The server cannot be reached; the change is saved and will be sent when it can."
        }
    }

    public var description: String {
        var parts = ["PyAirtableError.\(code.rawValue)"]
        if let status { parts.append("\(status)") }
        if let errorType { parts.append(errorType.rawValue) }
        parts.append(message)
        if let operation { parts.append("(\(operation))") }
        if let requestID { parts.append("[request \(requestID)]") }
        return parts.joined(separator: " ")
    }
}

extension HTTPField.Name {
    static let retryAfter = Self("Retry-After")!
}
