import Foundation
import Logging

extension PyAirtableClient {
    /// How the client authenticates.
    public enum Credentials: Sendable {
        /// No credentials: only public calls (health, register, login) work until you log in.
        case none
        /// A personal access token (`pat_…`), for scripts and services.
        case personalAccessToken(String)
        /// Credentials kept in a store: `login` saves there, and refreshed tokens are written back.
        case store(any TokenStore)
    }

    /// Timeouts of one HTTP attempt.
    public struct Timeouts: Sendable, Hashable {
        /// Establishing a connection.
        public var connect: Duration
        /// One whole request, answer included.
        public var request: Duration

        public init(connect: Duration = .seconds(10), request: Duration = .seconds(30)) {
            self.connect = connect
            self.request = request
        }
    }

    /// Everything that shapes a client. Every property has a default; only `serverURL` is required.
    ///
    /// ```swift
    /// var configuration = PyAirtableClient.Configuration(serverURL: URL(string: "http://127.0.0.1:8080")!)
    /// configuration.credentials = .personalAccessToken(token)
    /// configuration.retry.maximumRetries = 5
    /// ```
    public struct Configuration: Sendable {
        /// The server, such as `http://127.0.0.1:8080`.
        public var serverURL: URL
        public var credentials: Credentials
        public var timeouts: Timeouts
        public var retry: RetryPolicy
        public var circuitBreaker: CircuitBreakerPolicy
        /// A client-side token bucket; `nil` for none.
        public var rateLimit: RateLimit?
        /// Whether identical GETs in flight at once share one request.
        public var deduplicateRequests: Bool
        public var logger: Logger
        /// The prefix of the client's metric names.
        public var metricsPrefix: String
        /// The largest answer accepted.
        public var maximumResponseSize: Int
        /// The clock of backoff, circuit breaker and rate limit waits; tests inject a manual one.
        public var clock: any Clock<Duration>
        /// The transport; `nil` uses ``AsyncHTTPClientTransport``.
        public var transport: (any ClientTransport)?
        /// Your own middlewares, run outermost (before the SDK's own).
        public var middlewares: [any ClientMiddleware]
        /// The `User-Agent` sent.
        public var userAgent: String
        /// The cache of answers; off by default (``CacheSettings/disabled``), on with
        /// ``CacheSettings/persistent(path:)``.
        public var cache: CacheSettings
        /// How the realtime connection (``PyAirtableClient/realtime``) behaves.
        public var realtime: RealtimeSettings
        /// The offline queue of writes; off by default (``OfflineSettings/disabled``).
        public var offline: OfflineSettings
        /// Whether record writes lay their change over reads while they are pending (in flight, or
        /// waiting in the offline queue); see ``MutationsControl``.
        public var optimisticUpdates: Bool
        /// How record writes detect and settle conflicts (412): by default they send the version they
        /// started from and merge field by field.
        public var conflicts: ConflictSettings

        public init(
            serverURL: URL,
            credentials: Credentials = .none,
            timeouts: Timeouts = .init(),
            retry: RetryPolicy = .init(),
            circuitBreaker: CircuitBreakerPolicy = .init(),
            rateLimit: RateLimit? = nil,
            deduplicateRequests: Bool = true,
            logger: Logger = Logger(label: "pyat.client"),
            metricsPrefix: String = "pyat_client",
            maximumResponseSize: Int = 64 * 1024 * 1024,
            clock: any Clock<Duration> = ContinuousClock(),
            transport: (any ClientTransport)? = nil,
            middlewares: [any ClientMiddleware] = [],
            userAgent: String = "pyat-swift/\(PyAirtableClient.version)",
            cache: CacheSettings = .disabled,
            realtime: RealtimeSettings = RealtimeSettings(),
            offline: OfflineSettings = .disabled,
            optimisticUpdates: Bool = true,
            conflicts: ConflictSettings = ConflictSettings()
        ) {
            self.serverURL = serverURL
            self.credentials = credentials
            self.timeouts = timeouts
            self.retry = retry
            self.circuitBreaker = circuitBreaker
            self.rateLimit = rateLimit
            self.deduplicateRequests = deduplicateRequests
            self.logger = logger
            self.metricsPrefix = metricsPrefix
            self.maximumResponseSize = maximumResponseSize
            self.clock = clock
            self.transport = transport
            self.middlewares = middlewares
            self.userAgent = userAgent
            self.cache = cache
            self.realtime = realtime
            self.offline = offline
            self.optimisticUpdates = optimisticUpdates
            self.conflicts = conflicts
        }

        /// A configuration from `PYAT_SERVER` and `PYAT_TOKEN` (a personal access token or an
        /// access token), as the CLI and the examples use.
        /// - Throws: ``PyAirtableError/invalidArgument`` when `PYAT_SERVER` is missing or not a URL.
        public static func fromEnvironment(
            _ environment: [String: String] = ProcessInfo.processInfo.environment
        ) throws -> Configuration {
            guard let server = environment["PYAT_SERVER"], let url = URL(string: server), url.scheme != nil else {
                throw PyAirtableError.invalidArgument(
                    "set PYAT_SERVER to the server URL, such as http://127.0.0.1:8080"
                )
            }
            var configuration = Configuration(serverURL: url)
            if let token = environment["PYAT_TOKEN"], !token.isEmpty {
                configuration.credentials = .personalAccessToken(token)
            }
            return configuration
        }
    }
}
