import Foundation
import HTTPTypes

/// A step between a service call and the transport, in the style of swift-openapi-runtime:
/// it may change the request, call `next` (zero, one or several times) and change the response.
///
/// Every request of the client passes through the middlewares: JSON calls, file uploads and
/// downloads, the realtime event stream and polling, and token refreshes (with
/// ``ClientRequest/authenticated`` false). A response's body may still be arriving when `next`
/// returns (a download, an event stream); a middleware that sends a request again checks
/// ``ClientRequest/isReplayable`` first, since a body read once cannot be sent twice.
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

    /// Sends `request`; any error thrown becomes a ``PyAirtableError``, and so does a status other than
    /// 2xx or 304 (with the error body read, at most 1 MiB of it).
    func send(_ request: ClientRequest, checked: Bool) async throws -> ClientResponse {
        let response: ClientResponse
        do {
            response = try await send(request)
        } catch let error as PyAirtableError {
            throw error
        } catch is CancellationError {
            throw PyAirtableError.cancelledError
        } catch {
            throw PyAirtableError.transport(error, operation: request.operation)
        }
        guard checked, !((200..<300).contains(response.status.code) || response.status.code == 304) else {
            return response
        }
        let failed: ClientResponse
        do {
            failed = try await response.collected(upTo: 1 << 20)
        } catch {
            throw PyAirtableError.http(
                ClientResponse(status: response.status, headerFields: response.headerFields),
                operation: request.operation
            )
        }
        throw PyAirtableError.http(failed, operation: request.operation)
    }

    private func send(_ request: ClientRequest, from index: Int) async throws -> ClientResponse {
        guard index < middlewares.count else { return try await terminal(request) }
        return try await middlewares[index].intercept(request) { next in
            try await self.send(next, from: index + 1)
        }
    }
}
