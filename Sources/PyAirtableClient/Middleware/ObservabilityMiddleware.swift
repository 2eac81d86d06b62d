import Foundation
import HTTPTypes
import Logging
import Metrics

/// Logs each call (debug: method, path, status, duration — never headers or bodies, so no secret
/// reaches a log) and records its latency by service, operation and status.
struct ObservabilityMiddleware: ClientMiddleware {
    let logger: Logger
    let metricsPrefix: String

    func intercept(
        _ request: ClientRequest,
        next: @Sendable (ClientRequest) async throws -> ClientResponse
    ) async throws -> ClientResponse {
        let start = ContinuousClock.now
        do {
            let response = try await next(request)
            finish(
                request,
                status: String(response.status.code),
                start: start,
                requestID: response.headerFields[.requestID]
            )
            return response
        } catch let error as PyAirtableError {
            finish(request, status: error.shortDescription, start: start, requestID: error.requestID)
            throw error
        } catch {
            finish(request, status: "error", start: start, requestID: nil)
            throw error
        }
    }

    func finish(_ request: ClientRequest, status: String, start: ContinuousClock.Instant, requestID: String?) {
        let elapsed = ContinuousClock.now - start
        Timer(
            label: "\(metricsPrefix)_request_duration_seconds",
            dimensions: [
                ("service", request.operation.service.rawValue), ("operation", request.operation.name),
                ("status", status),
            ]
        ).recordNanoseconds(elapsed.nanoseconds)
        logger.debug(
            "request",
            metadata: [
                "method": "\(request.method.rawValue)", "path": "\(request.path)", "status": "\(status)",
                "duration_ms": "\(Double(elapsed.nanoseconds) / 1e6)", "operation": "\(request.operation)",
                "request_id": "\(requestID ?? "-")",
            ]
        )
    }
}
