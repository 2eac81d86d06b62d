import Foundation
import Hummingbird
import Logging
import Prometheus
import Synchronization

/// Counts requests and times them into the server's own Prometheus registry, labelled by method,
/// route pattern (never the raw path, so ids do not explode the label set) and status.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let metrics: ServerMetrics

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Failures count too, under the status the error middleware will answer with.
            let status = ErrorMiddleware.serverError(for: error).status
            metrics.record(
                method: request.method.rawValue,
                route: context.endpointPath ?? "unmatched",
                status: Int(status.code),
                duration: ContinuousClock.now - start
            )
            throw error
        }
        let elapsed = ContinuousClock.now - start
        metrics.record(
            method: request.method.rawValue,
            route: context.endpointPath ?? "unmatched",
            status: Int(response.status.code),
            duration: elapsed
        )
        context.logger.debug(
            "request",
            metadata: [
                "method": "\(request.method.rawValue)", "path": "\(request.uri.path)",
                "status": "\(response.status.code)", "duration": "\(elapsed)", "request_id": "\(context.requestID)",
            ]
        )
        return response
    }
}
