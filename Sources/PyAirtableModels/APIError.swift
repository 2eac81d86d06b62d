/// The machine-readable type of an error body.
public struct ErrorType: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// 400 or 422: the request is malformed or breaks a rule.
    public static let validation = ErrorType(rawValue: "VALIDATION_ERROR")
    /// 401: no or bad credentials.
    public static let auth = ErrorType(rawValue: "AUTH_ERROR")
    /// 403: the caller's role does not allow this.
    public static let forbidden = ErrorType(rawValue: "FORBIDDEN")
    /// 404: no such resource, or not visible to the caller.
    public static let notFound = ErrorType(rawValue: "NOT_FOUND")
    /// 409 or 412: the resource changed, or already exists.
    public static let conflict = ErrorType(rawValue: "CONFLICT")
    /// 413: the body is larger than the server accepts.
    public static let payloadTooLarge = ErrorType(rawValue: "PAYLOAD_TOO_LARGE")
    /// 429: slow down; see `Retry-After`.
    public static let rateLimited = ErrorType(rawValue: "RATE_LIMITED")
    /// 410: the asked-for event position is older than the retained log; refetch.
    public static let resyncRequired = ErrorType(rawValue: "RESYNC_REQUIRED")
    /// 5xx: the server failed.
    public static let server = ErrorType(rawValue: "SERVER_ERROR")

    public var description: String { rawValue }
}

/// The `error` member of an error body.
public struct APIErrorDetail: Codable, Sendable, Hashable {
    public var type: ErrorType
    public var code: Int
    public var message: String
    public var requestID: String?
    /// Where in the input the problem is, when it has a place: a formula position, a field name.
    public var position: Int?
    public var field: String?

    public init(
        type: ErrorType,
        code: Int,
        message: String,
        requestID: String? = nil,
        position: Int? = nil,
        field: String? = nil
    ) {
        self.type = type
        self.code = code
        self.message = message
        self.requestID = requestID
        self.position = position
        self.field = field
    }

    enum CodingKeys: String, CodingKey {
        case type, code, message
        case requestID = "request_id"
        case position, field
    }
}

/// The body of every error answer:
/// `{"error": {"type": "NOT_FOUND", "code": 404, "message": "…", "request_id": "…"}}`.
/// A 412 also carries `current`, the resource as it is now.
public struct ErrorResponse: Codable, Sendable, Hashable {
    public var error: APIErrorDetail
    public var current: JSONValue?

    public init(error: APIErrorDetail, current: JSONValue? = nil) {
        self.error = error
        self.current = current
    }
}
