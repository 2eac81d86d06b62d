import Foundation
import HTTPTypes
import NIOCore

extension PyAirtableClient {
    /// Sends a request whose request or response body streams (file transfers), with the same
    /// credentials as every other call: the bearer token, one refresh and one more try after a
    /// 401, and a non-success answer decoded into a ``PyAirtableError``.
    ///
    /// It bypasses the middleware chain, whose steps work on whole bodies; retrying a partly sent
    /// file is the caller's decision. With a transport that cannot stream, bodies go whole.
    func executeStreaming<Result: Sendable>(
        _ request: ClientRequest,
        body: StreamingRequestBody?,
        timeout: Duration,
        handle: (ClientResponse, ResponseBodyStream) async throws -> Result
    ) async throws -> Result {
        var request = request
        request.headerFields[.userAgent] = configuration.userAgent
        let observer = ObservabilityMiddleware(
            logger: configuration.logger,
            metricsPrefix: configuration.metricsPrefix
        )
        let start = ContinuousClock.now
        do {
            let (result, head) = try await authenticatedExchange(request, body: body, timeout: timeout, handle: handle)
            observer.finish(
                request,
                status: String(head.status.code),
                start: start,
                requestID: head.headerFields[.requestID]
            )
            return result
        } catch let error as PyAirtableError {
            observer.finish(request, status: error.shortDescription, start: start, requestID: error.requestID)
            throw error
        } catch {
            observer.finish(request, status: "error", start: start, requestID: nil)
            throw error
        }
    }

    /// The exchange with the bearer token, refreshed once after a 401.
    private func authenticatedExchange<Result: Sendable>(
        _ request: ClientRequest,
        body: StreamingRequestBody?,
        timeout: Duration,
        handle: (ClientResponse, ResponseBodyStream) async throws -> Result
    ) async throws -> (Result, ClientResponse) {
        var request = request
        var token = request.authenticated ? try await tokens.token() : nil
        var refreshed = false
        while true {
            if let token { request.headerFields[.authorization] = "Bearer \(token)" }
            let outcome = try await exchange(request, body: body, timeout: timeout) { head, chunks in
                if head.status == .unauthorized, !refreshed, token != nil {
                    return StreamingOutcome<Result>.unauthorized
                }
                guard (200..<300).contains(head.status.code) || head.status.code == 304 else {
                    var failed = head
                    failed.body = try await chunks.collect(upTo: 1 << 20)
                    throw PyAirtableError.http(failed, operation: request.operation)
                }
                return .finished(try await handle(head, chunks), head)
            }
            switch outcome {
            case .finished(let result, let head):
                return (result, head)
            case .unauthorized:
                refreshed = true
                guard let rejected = token, let replacement = try await tokens.refreshed(replacing: rejected) else {
                    throw PyAirtableError.http(ClientResponse(status: .unauthorized), operation: request.operation)
                }
                token = replacement
            }
        }
    }

    private func exchange<Result: Sendable>(
        _ request: ClientRequest,
        body: StreamingRequestBody?,
        timeout: Duration,
        handle: (ClientResponse, ResponseBodyStream) async throws -> Result
    ) async throws -> Result {
        do {
            if let streaming = transport as? any StreamingClientTransport {
                return try await streaming.execute(
                    request,
                    body: body,
                    baseURL: configuration.serverURL,
                    timeout: timeout,
                    handle: handle
                )
            }
            var whole = request
            if let body { whole.body = try await body.collect() }
            let response = try await transport.send(whole, baseURL: configuration.serverURL, timeout: timeout)
            var head = response
            head.body = Data()
            return try await handle(head, ResponseBodyStream(data: response.body))
        } catch let error as PyAirtableError {
            throw error
        } catch is CancellationError {
            throw PyAirtableError.cancelledError
        }
    }
}

private enum StreamingOutcome<Result: Sendable>: Sendable {
    case finished(Result, ClientResponse)
    case unauthorized
}
