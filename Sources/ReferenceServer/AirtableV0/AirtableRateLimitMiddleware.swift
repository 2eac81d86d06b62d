import Foundation
import Hummingbird
import PyAirtableModels

/// Airtable's rate limit under `/v0` (see ``AirtableConfiguration/enforceRateLimit``): each base
/// may take ``AirtableConfiguration/requestsPerSecondPerBase`` requests a second. A request past
/// it is answered 429 `TOO_MANY_REQUESTS` with `Retry-After` before any handler runs, so a client
/// that retries a refused POST never creates twice.
///
/// Only requests with a principal, to a base they can see, count (others are answered 401 or 403
/// anyway, and cannot use up a base's allowance); the base is the path's first component after `/v0/` (`/v0/app…/…`) or the
/// one after `/v0/meta/bases/` or `/v0/bases/`.
struct AirtableRateLimitMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let table: RateLimitTable
    let now: @Sendable () -> Date
    let store: any SchemaRepository

    init(configuration: AirtableConfiguration, store: any SchemaRepository, now: @escaping @Sendable () -> Date) {
        self.store = store
        table = RateLimitTable(
            limit: .init(attempts: max(1, configuration.requestsPerSecondPerBase), period: 1),
            maximumKeys: configuration.maximumTrackedBases
        )
        self.now = now
    }

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let user = context.principal?.userID, let base = Self.base(inPath: request.uri.path) else {
            return try await next(request, context)
        }
        // Only a base the caller can see is charged: nobody can use up another tenant's allowance.
        guard let id = BaseID(String(base)), (try? await store.base(id: id, user: user)) != nil else {
            return try await next(request, context)
        }
        if let wait = table.take(base, now: now()) {
            let whole = max(1, Int(wait.rounded(.up)))
            var error = AirtableErrors.error(
                .tooManyRequests,
                "TOO_MANY_REQUESTS",
                "You have made too many requests in a short period of time. Please retry your request later"
            )
            error.headers[.retryAfter] = String(whole)
            throw error
        }
        return try await next(request, context)
    }

    /// The base a `/v0` path is about, or `nil` (`/v0/meta/whoami`, `/v0/meta/bases`).
    static func base(inPath path: String) -> Substring? {
        var components = path.split(separator: "/", omittingEmptySubsequences: true)[...]
        guard components.first == "v0" else { return nil }
        components = components.dropFirst()
        if components.first == "meta" {
            guard components.dropFirst().first == "bases" else { return nil }
            components = components.dropFirst(2)
        } else if components.first == "bases" {
            // `/v0/bases/{base}/webhooks…`
            components = components.dropFirst()
        }
        guard let base = components.first, base.hasPrefix("app") else { return nil }
        return base
    }
}
