import Foundation
import HTTPTypes
import Logging
import Metrics

/// When and how to try again.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts after the first.
    public var maximumRetries: Int
    /// The delay before the first retry; it doubles each time.
    public var baseDelay: Duration
    /// The longest delay, also the cap on a server's `Retry-After`.
    public var maximumDelay: Duration
    /// Whether delays are jittered (half fixed, half random), so clients that failed together do
    /// not retry together.
    public var jitter: Bool

    public init(
        maximumRetries: Int = 3,
        baseDelay: Duration = .milliseconds(200),
        maximumDelay: Duration = .seconds(30),
        jitter: Bool = true
    ) {
        self.maximumRetries = maximumRetries
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
        self.jitter = jitter
    }

    /// No retries.
    public static let none = RetryPolicy(maximumRetries: 0)

    /// The delay before retry number `attempt` (0 = the first retry).
    public func delay(forRetry attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let exponential = baseDelay * (1 << min(attempt, 30))
        let capped = min(exponential, maximumDelay)
        guard jitter else { return capped }
        let half = capped / 2
        let randomNanoseconds = Int64.random(in: 0...max(0, half.nanoseconds), using: &generator)
        return half + .nanoseconds(randomNanoseconds)
    }
}

/// Retries failures that retrying can help — network errors, timeouts, 429, 502, 503, 504 — with
/// jittered exponential backoff on an injected clock. Never other 4xx, never a write without an
/// `Idempotency-Key` (every SDK write has one), and never a request whose body can be read only once.
struct RetryMiddleware<C: Clock<Duration>>: ClientMiddleware {
    let policy: RetryPolicy
    let clock: C
    let logger: Logger
    let metricsPrefix: String

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            let outcome: Result<ClientResponse, any Error>
            do {
                outcome = .success(try await next(request))
            } catch {
                outcome = .failure(error)
            }
            guard attempt < policy.maximumRetries, request.isIdempotent, request.isReplayable,
                let wait = retryDelay(outcome, attempt, &generator)
            else { return try outcome.get() }
            attempt += 1
            Counter(
                label: "\(metricsPrefix)_retries_total",
                dimensions: [("service", request.operation.service.rawValue), ("operation", request.operation.name)]
            ).increment()
            logger.debug(
                "retrying",
                metadata: [
                    "operation": "\(request.operation)", "attempt": "\(attempt)",
                    "delay_ms": "\(wait.nanoseconds / 1_000_000)",
                ]
            )
            do {
                try await clock.sleep(for: wait)
            } catch {
                throw PyAirtableError.cancelledError
            }
        }
    }

    /// The wait before retrying `outcome`, or `nil` when it should not be retried.
    private func retryDelay(
        _ outcome: Result<ClientResponse, any Error>,
        _ attempt: Int,
        _ generator: inout SystemRandomNumberGenerator
    ) -> Duration? {
        switch outcome {
        case .success(let response):
            let code = response.status.code
            guard code == 429 || code == 502 || code == 503 || code == 504 else { return nil }
            let computed = policy.delay(forRetry: attempt, using: &generator)
            if let retryAfter = response.headerFields[.retryAfter].flatMap(PyAirtableError.parseRetryAfter) {
                return min(retryAfter, policy.maximumDelay)
            }
            return computed
        case .failure(let error):
            guard let error = error as? PyAirtableError, error == .transportFailure || error == .timeout else {
                return nil
            }
            return policy.delay(forRetry: attempt, using: &generator)
        }
    }
}
