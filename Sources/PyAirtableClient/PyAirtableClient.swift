import Foundation
import HTTPTypes
import Logging
import PyAirtableModels
import Synchronization

/// The client of a pyat server: one shared object with connection pool, credentials and
/// resilience, and a small struct per service (`client.records`, `client.workspaces`, …).
///
/// ```swift
/// try await withPyAirtableClient(configuration: .fromEnvironment()) { client in
///     let page = try await client.records.list(in: tableID, query: RecordQuery(filter: "{Score} > 3"))
///     for try await record in client.records.all(in: tableID) { print(record.id) }
/// }
/// ```
///
/// Prefer ``withPyAirtableClient(configuration:_:)``; a client made with ``init(configuration:)``
/// must be shut down with ``shutdown()``.
public final class PyAirtableClient: Sendable {
    /// The SDK's version.
    public static let version = "0.1.0"

    public let configuration: Configuration
    let transport: any ClientTransport
    let chain: MiddlewareChain
    /// When queued offline writes are replayed: see ``OfflineControl/replayState``.
    let replayScheduler: ReplayScheduler
    let tokens: TokenManager
    let responseCache: ResponseCache?
    let offlineQueues: OfflineQueues?
    /// Pending record writes laid over confirmed data.
    let optimistic = OptimisticLayers()
    /// Keeps writes to one record in order.
    let scopes = ScopeSerializer()
    /// The records read last: where a write finds the version it starts from.
    let recentReads = RecentReads()
    /// Every settled conflict, for ``MutationsControl/conflicts()``.
    let conflictReports = Broadcast<ConflictReport>()
    /// The cache identity when the credentials cannot change (a fixed token, or none).
    private let fixedCacheIdentity: String?
    private let realtimeClient = Mutex<RealtimeClient?>(nil)
    private let circuitState: @Sendable (ServiceName) -> CircuitState

    /// Makes a client. Call ``shutdown()`` when done.
    public init(configuration: Configuration) {
        self.configuration = configuration
        let transport =
            configuration.transport
            ?? AsyncHTTPClientTransport(
                connectTimeout: configuration.timeouts.connect
            )
        self.transport = transport
        let baseURL = configuration.serverURL
        let defaultTimeout = configuration.timeouts.request
        let userAgent = configuration.userAgent
        let maximumResponseSize = configuration.maximumResponseSize
        // Refreshing goes through the same chain as every request, flagged unauthenticated: the auth
        // middleware passes it by, so it never waits behind the 401 that asked for it.
        let chainReference = ChainReference()
        let refresh: TokenManager.Refresh = { refreshToken in
            let request = try Self.request(
                .post,
                "/api/v1/auth/refresh",
                body: RefreshRequest(refreshToken: refreshToken),
                operation: ClientOperation(service: "auth", name: "refresh"),
                authenticated: false,
                userAgent: userAgent
            )
            let response = try await chainReference.send(request, maximumResponseSize: maximumResponseSize)
            return try JSONCoding.decoder.decode(RefreshResponse.self, from: response.data).tokens
        }
        let server = configuration.serverURL.absoluteString
        let tokens: TokenManager
        switch configuration.credentials {
        case .none:
            tokens = TokenManager(store: InMemoryTokenStore(), server: server, fixedToken: nil, refresh: refresh)
        case .personalAccessToken(let token):
            tokens = TokenManager(store: InMemoryTokenStore(), server: server, fixedToken: token, refresh: refresh)
        case .store(let store):
            tokens = TokenManager(store: store, server: server, fixedToken: nil, refresh: refresh)
        }
        self.tokens = tokens
        switch configuration.credentials {
        case .none: self.fixedCacheIdentity = nil
        case .personalAccessToken(let token): self.fixedCacheIdentity = TokenManager.identity(ofToken: token)
        case .store: self.fixedCacheIdentity = nil
        }
        self.responseCache =
            configuration.cache.isEnabled
            ? ResponseCache(
                settings: configuration.cache,
                serverURL: configuration.serverURL,
                logger: configuration.logger
            )
            : nil
        self.offlineQueues =
            configuration.offline.isEnabled
            ? OfflineQueues(
                settings: configuration.offline,
                serverURL: configuration.serverURL,
                logger: configuration.logger
            )
            : nil

        let parts = Self.makeMiddlewares(configuration: configuration, clock: configuration.clock, tokens: tokens)
        self.circuitState = parts.circuitState
        let chain = MiddlewareChain(middlewares: configuration.middlewares + parts.middlewares) { request in
            // Whatever a transport throws reaches the middlewares as a PyAirtableError, so retry and
            // the circuit breaker judge custom transports' failures like the default one's.
            do {
                let response = try await transport.send(
                    request,
                    baseURL: baseURL,
                    timeout: request.timeout ?? defaultTimeout
                )
                guard request.collectsResponse else { return response }
                return try await PyAirtableClient.collect(response, upTo: maximumResponseSize)
            } catch let error as PyAirtableError {
                throw error
            } catch is CancellationError {
                throw PyAirtableError.cancelledError
            } catch {
                throw PyAirtableError.transport(error, operation: request.operation)
            }
        }
        self.chain = chain
        chainReference.set(chain)
        self.replayScheduler = ReplayScheduler(settings: configuration.offline)
        if let offlineQueues, offlineQueues.settings.replaysAutomatically, !offlineQueues.settings.queueWithoutTrying {
            // Writes queued by an earlier run go once the server answers.
            replayScheduler.trigger(.startup, client: self)
        }
    }

    /// The SDK's middlewares, outermost first: observability, dedup, circuit breaker, retry, rate
    /// limit, auth.
    private static func makeMiddlewares<C: Clock<Duration>>(
        configuration: Configuration,
        clock: C,
        tokens: TokenManager
    ) -> (middlewares: [any ClientMiddleware], circuitState: @Sendable (ServiceName) -> CircuitState) {
        let logger = configuration.logger
        let prefix = configuration.metricsPrefix
        var middlewares: [any ClientMiddleware] = [ObservabilityMiddleware(logger: logger, metricsPrefix: prefix)]
        if configuration.deduplicateRequests {
            middlewares.append(DeduplicationMiddleware(maximumResponseSize: configuration.maximumResponseSize))
        }
        let breaker = CircuitBreakerMiddleware(
            policy: configuration.circuitBreaker,
            clock: clock,
            logger: logger,
            metricsPrefix: prefix
        )
        middlewares.append(breaker)
        middlewares.append(
            RetryMiddleware(policy: configuration.retry, clock: clock, logger: logger, metricsPrefix: prefix)
        )
        if let rateLimit = configuration.rateLimit {
            middlewares.append(RateLimitMiddleware(limit: rateLimit, clock: clock))
        }
        middlewares.append(AuthMiddleware(tokens: tokens))
        return (middlewares, { breaker.state(of: $0) })
    }

    /// Closes connections (the realtime one too). The client cannot be used afterwards.
    public func shutdown() async throws {
        // Taken out, so the realtime client (which holds this one) does not keep it alive.
        let realtime = realtimeClient.withLock { realtime in
            defer { realtime = nil }
            return realtime
        }
        await realtime?.close()
        await replayScheduler.stop()
        try await transport.shutdown()
    }

    /// The realtime connection, made on first use (it connects on the first subscription).
    public var realtime: RealtimeClient {
        realtimeClient.withLock { realtime in
            if let realtime { return realtime }
            let made = RealtimeClient(client: self, configuration: configuration.realtime)
            realtime = made
            return made
        }
    }

    /// Who the cache's entries belong to now (see ``TokenManager/cacheIdentity()``).
    func cacheIdentity() async -> String {
        if let fixedCacheIdentity { return fixedCacheIdentity }
        return await tokens.cacheIdentity()
    }

    /// The state of a service's circuit breaker: `client.circuitState(of: .records)`.
    public func circuitState(of service: ServiceName) -> CircuitState {
        circuitState(service)
    }

    /// The credentials the client holds now (after login or refresh), if any.
    public func credentials() async throws -> StoredCredentials? {
        try await tokens.current()
    }

    /// How many access-token refreshes this client ran.
    public var refreshCount: Int {
        get async { await tokens.refreshCount }
    }

    // MARK: Services

    public var auth: AuthService { AuthService(client: self) }
    public var users: UsersService { UsersService(client: self) }
    public var workspaces: WorkspacesService { WorkspacesService(client: self) }
    public var bases: BasesService { BasesService(client: self) }
    public var tables: TablesService { TablesService(client: self) }
    public var fields: FieldsService { FieldsService(client: self) }
    public var views: ViewsService { ViewsService(client: self) }
    public var records: RecordsService { RecordsService(client: self) }
    public var webhooks: WebhooksService { WebhooksService(client: self) }
    public var files: FilesService { FilesService(client: self) }
    public var comments: CommentsService { CommentsService(client: self) }
    public var mirror: MirrorClient { MirrorClient(client: self) }

    /// `GET /health`: whether the server and its database are up.
    public func health() async throws -> HealthStatus {
        try await send(
            Self.request(.get, "/health", operation: .init(service: "health", name: "get"), authenticated: false),
            as: HealthStatus.self
        )
    }

    // MARK: Sending

    /// Builds a request: JSON body, `Accept`, `User-Agent`, and for writes a fresh `Idempotency-Key`
    /// so that retries (and offline replays) apply once.
    static func request(
        _ method: HTTPRequest.Method,
        _ path: String,
        query: [QueryItem] = [],
        body: (some Encodable)? = EmptyRequestBody?.none,
        operation: ClientOperation,
        ifMatch: Int? = nil,
        authenticated: Bool = true,
        userAgent: String = "pyat-swift/\(version)",
        idempotencyKey: String? = nil
    ) throws -> ClientRequest {
        var fields: HTTPFields = [.accept: "application/json", .userAgent: userAgent]
        var data: Data?
        if let body {
            data = try JSONCoding.encoder.encode(body)
            fields[.contentType] = "application/json"
        }
        if method != .get && method != .head {
            fields[.idempotencyKey] = idempotencyKey ?? UUID().uuidString.lowercased()
        }
        if let ifMatch { fields[.ifMatch] = VersionTag.format(ifMatch) }
        return ClientRequest(
            method: method,
            path: path,
            query: query,
            headerFields: fields,
            body: data.map(HTTPBody.init),
            operation: operation,
            authenticated: authenticated
        )
    }

    /// Sends a request through the middleware chain and reads its answer into memory (at most
    /// ``Configuration/maximumResponseSize``); a non-success status becomes a ``PyAirtableError``.
    @discardableResult
    func execute(_ request: ClientRequest) async throws -> ClientResponse {
        var request = request
        request.collectsResponse = true
        let response = try await exchange(request)
        return try await Self.collect(response, upTo: configuration.maximumResponseSize)
    }

    /// Sends a request through the middleware chain — the one path of every request: JSON calls, file
    /// transfers, event streams, polling — and answers once the head arrives, its body still
    /// streaming; a non-success status becomes a ``PyAirtableError`` (its error body read).
    func exchange(_ request: ClientRequest) async throws -> ClientResponse {
        var request = request
        request.headerFields[.userAgent] = configuration.userAgent
        return try await chain.send(request, checked: true)
    }

    static func collect(_ response: ClientResponse, upTo limit: Int) async throws -> ClientResponse {
        do {
            return try await response.collected(upTo: limit)
        } catch let error as HTTPBody.TooManyBytesError {
            throw PyAirtableError.responseTooLarge(limit: limit, underlying: error)
        }
    }

    /// Sends a request and decodes the answer as `type`.
    func send<T: Decodable>(_ request: ClientRequest, as type: T.Type) async throws -> T {
        let response = try await execute(request)
        do {
            return try JSONCoding.decoder.decode(type, from: response.data)
        } catch {
            throw PyAirtableError.decoding(
                error,
                operation: request.operation,
                requestID: response.headerFields[.requestID]
            )
        }
    }
}

/// The chain, for the token refresh made before it (the chain's auth middleware holds the token
/// manager, whose refresh sends through the chain).
final class ChainReference: Sendable {
    private let chain = Mutex<MiddlewareChain?>(nil)

    func set(_ chain: MiddlewareChain) {
        self.chain.withLock { $0 = chain }
    }

    func send(_ request: ClientRequest, maximumResponseSize: Int) async throws -> ClientResponse {
        guard let chain = chain.withLock({ $0 }) else {
            throw PyAirtableError.notAuthenticated("the client is not ready to refresh its token")
        }
        var request = request
        request.collectsResponse = true
        let response = try await chain.send(request, checked: true)
        return try await PyAirtableClient.collect(response, upTo: maximumResponseSize)
    }
}

/// The absent body of a request without one.
struct EmptyRequestBody: Encodable {}

/// Runs `body` with a client and shuts the client down afterwards, whether `body` returns or throws.
///
/// ```swift
/// try await withPyAirtableClient(configuration: .fromEnvironment()) { client in
///     print(try await client.users.me().email)
/// }
/// ```
public func withPyAirtableClient<Result>(
    configuration: PyAirtableClient.Configuration,
    _ body: (PyAirtableClient) async throws -> Result
) async throws -> Result {
    let client = PyAirtableClient(configuration: configuration)
    let result: Result
    do {
        result = try await body(client)
    } catch {
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
    return result
}
