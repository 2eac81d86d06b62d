import Foundation
import HTTPTypes

/// A step between a service call and the transport, in the style of swift-openapi-runtime:
/// it may change the request, call `next` (zero, one or several times) and change the response.
public protocol ClientMiddleware: Sendable {
    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse
}

/// Runs a request through middlewares (first = outermost) and then the transport.
struct MiddlewareChain: Sendable {
    let middlewares: [any ClientMiddleware]
    let terminal: @Sendable (ClientRequest) async throws -> ClientResponse

    func send(_ request: ClientRequest) async throws -> ClientResponse {
        try await send(request, from: 0)
    }

    private func send(_ request: ClientRequest, from index: Int) async throws -> ClientResponse {
        guard index < middlewares.count else { return try await terminal(request) }
        return try await middlewares[index].intercept(request) { next in
            try await self.send(next, from: index + 1)
        }
    }
}
