import Foundation
import PyAirtableModels

/// Mirror mode: bases of an upstream Airtable Web API v0 (Airtable itself, or another `pyat serve`)
/// kept in this server's store, served by every route like local bases, read-only here.
///
/// ```swift
/// var configuration = ServerConfiguration()
/// configuration.mirror = MirrorConfiguration(
///     upstream: URL(string: "https://api.airtable.com")!,
///     bases: [BaseID(unchecked: "appXXXXXXXXXXXXXX")],
///     token: ProcessInfo.processInfo.environment["PYAT_MIRROR_TOKEN"] ?? "",
///     owner: .email("ada@example.com")
/// )
/// ```
public struct MirrorConfiguration: Sendable, CustomStringConvertible {
    /// The upstream's origin, without `/v0` (`https://api.airtable.com`).
    public var upstream: URL
    /// The bases mirrored, by their upstream ids (which they keep here).
    public var bases: [BaseID]
    /// The upstream's token (`PYAT_MIRROR_TOKEN`): sent as `Authorization: Bearer`, never logged
    /// or shown (``description`` leaves it out).
    public var token: String
    /// The local user who owns each mirrored base's workspace (and may add members to it).
    public var owner: MirrorOwner
    /// Requests a second to one upstream base. Default: 5, Airtable's limit.
    public var requestsPerSecond: Double
    /// Records a page (Airtable's most: 100). Default: 100.
    public var pageSize: Int
    /// How long one upstream request may take. Default: 60 seconds.
    public var requestTimeout: Duration
    /// The longest wait a 429's `Retry-After` (or Airtable's 30 s without one) is honoured for
    /// before the wait is capped. Default: 60 seconds.
    public var maximumRetryAfter: Duration
    /// How many times one request is tried (429s, 5xx answers, failed connections) before the sync
    /// fails. Default: 8.
    public var maximumAttempts: Int
    /// The largest upstream answer read, in bytes (a page of 100 records is far below it); past it the
    /// sync fails rather than read on. Default: 64 MiB.
    public var maximumAnswerBytes: Int
    /// The deepest JSON nesting accepted in an upstream answer. Default: 64.
    public var maximumAnswerDepth: Int
    /// The most records one base may have; a larger upstream base fails its sync (the previous
    /// snapshot keeps serving). Default: 2,000,000.
    public var maximumRecords: Int
    /// How many times a full sync starts over when the upstream's schema changed while it read
    /// the records, before it fails. Default: 3.
    public var maximumSchemaRetries: Int
    /// How long after a failed sync the next one starts by itself. Default: 60 seconds.
    public var retryInterval: Duration
    /// Whether a sync starts when the server starts. Default: `true`.
    public var syncOnStart: Bool

    public init(
        upstream: URL,
        bases: [BaseID],
        token: String,
        owner: MirrorOwner,
        requestsPerSecond: Double = 5,
        pageSize: Int = 100,
        requestTimeout: Duration = .seconds(60),
        maximumRetryAfter: Duration = .seconds(60),
        maximumAttempts: Int = 8,
        maximumAnswerBytes: Int = 64 << 20,
        maximumAnswerDepth: Int = 64,
        maximumRecords: Int = 2_000_000,
        maximumSchemaRetries: Int = 3,
        retryInterval: Duration = .seconds(60),
        syncOnStart: Bool = true
    ) {
        self.upstream = upstream
        self.bases = bases
        self.token = token
        self.owner = owner
        self.requestsPerSecond = requestsPerSecond
        self.pageSize = pageSize
        self.requestTimeout = requestTimeout
        self.maximumRetryAfter = maximumRetryAfter
        self.maximumAttempts = maximumAttempts
        self.maximumAnswerBytes = maximumAnswerBytes
        self.maximumAnswerDepth = maximumAnswerDepth
        self.maximumRecords = maximumRecords
        self.maximumSchemaRetries = maximumSchemaRetries
        self.retryInterval = retryInterval
        self.syncOnStart = syncOnStart
    }

    /// The upstream's address for logs and status: the origin and path, no credentials or query.
    public var upstreamDescription: String {
        guard var components = URLComponents(url: upstream, resolvingAgainstBaseURL: false) else { return "upstream" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "upstream"
    }

    public var description: String {
        "MirrorConfiguration(upstream: \(upstreamDescription), bases: \(bases.map(\.rawValue)), owner: \(owner))"
    }

    func validate() throws {
        guard let scheme = upstream.scheme?.lowercased(), scheme == "http" || scheme == "https", upstream.host != nil
        else {
            throw ServerConfigurationError(
                message: "the mirror's upstream must be an http(s) URL, not \(upstreamDescription)"
            )
        }
        if case .email(let email) = owner, email.isEmpty || email.count > 320 {
            throw ServerConfigurationError(message: "the mirror's owner needs a user id (usr…) or an email")
        }
        guard !bases.isEmpty else {
            throw ServerConfigurationError(message: "mirror mode needs at least one base (--mirror-base app…)")
        }
        guard Set(bases).count == bases.count else {
            throw ServerConfigurationError(message: "a base is named twice with --mirror-base")
        }
        guard !token.isEmpty else {
            throw ServerConfigurationError(
                message: "mirror mode needs the upstream's token in PYAT_MIRROR_TOKEN (never on the command line)"
            )
        }
        guard token.utf8.count <= 4096, !token.contains(where: { $0.isNewline }) else {
            throw ServerConfigurationError(message: "PYAT_MIRROR_TOKEN is not a token (one line, at most 4096 bytes)")
        }
        guard requestsPerSecond > 0, requestsPerSecond <= 1000 else {
            throw ServerConfigurationError(
                message: "the mirror's request rate must be above 0 and at most 1000 a second, not \(requestsPerSecond)"
            )
        }
        guard (1...100).contains(pageSize) else {
            throw ServerConfigurationError(message: "the mirror's page size must be from 1 to 100, not \(pageSize)")
        }
        guard (1...100).contains(maximumAttempts) else {
            throw ServerConfigurationError(
                message: "the mirror's attempts must be from 1 to 100, not \(maximumAttempts)"
            )
        }
        guard maximumAnswerBytes >= 64 << 10, maximumRecords >= 1, (8...512).contains(maximumAnswerDepth) else {
            throw ServerConfigurationError(
                message: "the mirror's limits are too small: answers ≥ 64 KiB, records ≥ 1, depth 8…512"
            )
        }
    }
}

/// Who owns the mirrored bases' workspaces here: a local user, by id or by email (looked up at each
/// sync, so the account may be registered after the server started).
public enum MirrorOwner: Sendable, Hashable, CustomStringConvertible {
    case user(UserID)
    case email(String)

    public var description: String {
        switch self {
        case .user(let id): id.rawValue
        case .email(let email): email
        }
    }
}
