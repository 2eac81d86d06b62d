import Foundation
import HTTPTypes

/// Puts the bearer token on each request; after a 401, refreshes the access token (once for all
/// concurrent requests) and sends the request once more — unless its body can be read only once.
/// Requests flagged unauthenticated (login, register, the refresh itself) pass untouched.
struct AuthMiddleware: ClientMiddleware {
    let tokens: TokenManager

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        guard request.authenticated, let token = try await tokens.token() else { return try await next(request) }
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        let response = try await next(request)
        guard response.status == .unauthorized, request.isReplayable,
            let replacement = try await tokens.refreshed(replacing: token)
        else {
            return response
        }
        request.headerFields[.authorization] = "Bearer \(replacement)"
        return try await next(request)
    }
}
