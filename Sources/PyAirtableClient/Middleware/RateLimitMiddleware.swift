import Foundation
import HTTPTypes
import Synchronization

/// A client-side token bucket: at most `burst` requests at once, refilled at `requestsPerSecond`.
public struct RateLimit: Sendable, Hashable {
    public var requestsPerSecond: Double
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
    }
}

/// Makes each attempt wait for a token, so a busy program smooths its own load instead of
/// earning 429s.
final class RateLimitMiddleware<C: Clock<Duration>>: ClientMiddleware {
    private struct Bucket {
        var tokens: Double
        var updatedAt: C.Instant
    }

    private let limit: RateLimit
    private let clock: C
    private let bucket: Mutex<Bucket>

    init(limit: RateLimit, clock: C) {
        self.limit = limit
        self.clock = clock
        self.bucket = Mutex(Bucket(tokens: Double(limit.burst), updatedAt: clock.now))
    }

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        while let wait = takeToken() {
            do {
                try await clock.sleep(for: wait)
            } catch {
                throw PyAirtableError.cancelledError
            }
        }
        return try await next(request)
    }

    /// Takes a token, or returns how long until one is due.
    private func takeToken() -> Duration? {
        let now = clock.now
        return bucket.withLock { bucket in
            let elapsed = bucket.updatedAt.duration(to: now).seconds
            bucket.tokens = min(Double(limit.burst), bucket.tokens + elapsed * limit.requestsPerSecond)
            bucket.updatedAt = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            let missing = 1 - bucket.tokens
            return .milliseconds(Int64((missing / limit.requestsPerSecond * 1000).rounded(.up)))
        }
    }
}
