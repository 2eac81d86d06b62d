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
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        metrics.record(
            method: request.method.rawValue, route: context.endpointPath ?? "unmatched",
            status: Int(response.status.code), duration: elapsed
        )
        context.logger.debug(
            "request",
            metadata: [
                "method": "\(request.method.rawValue)", "path": "\(request.uri.path)",
                "status": "\(response.status.code)", "duration": "\(elapsed)",
            ]
        )
        return response
    }
}

/// The server's metrics, exported at `/metrics`.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let requestCount = Atomic<Int>(0)

    public init() {
        self.registry = PrometheusCollectorRegistry()
    }

    /// Requests served since start.
    public var requests: Int { requestCount.load(ordering: .relaxed) }

    func record(method: String, route: String, status: Int, duration: Duration) {
        requestCount.add(1, ordering: .relaxed)
        let labels = [("method", method), ("route", route), ("status", String(status))]
        registry.makeCounter(descriptor: .init(namespace: "pyat", metricName: "http_requests", unitName: "total", helpText: "HTTP requests served"), labels: labels).increment()
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "pyat", metricName: "http_request_duration", unitName: "seconds", helpText: "HTTP request latency"),
            labels: [("method", method), ("route", route)],
            buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5)]
        ).record(duration)
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
