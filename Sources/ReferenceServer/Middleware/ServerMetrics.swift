import Foundation
import Hummingbird
import Logging
import Prometheus
import Synchronization

/// The server's metrics, exported at `/metrics`.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let requestCount = Atomic<Int>(0)
    private struct SeriesKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }
    /// The counter and histogram of each label set, so a request neither builds labels nor asks the registry.
    private let series = Mutex<[SeriesKey: (Counter, DurationHistogram)]>([:])

    /// Open realtime connections (WebSocket and SSE).
    let realtimeConnections: Gauge
    /// Events handed to realtime subscribers.
    let realtimeEventsDelivered: Counter
    /// Realtime connections cut off for falling too far behind.
    let realtimeSlowConsumers: Counter
    /// Realtime connections refused because their user held the most allowed.
    let realtimeRefusals: Counter
    /// The record read cache, brought up to date at each scrape.
    private let recordCacheLookups: (hits: Counter, misses: Counter)
    private let recordCacheEntries: Gauge
    private let recordCacheBytes: Gauge
    private let recordCacheSeen = Mutex<(hits: Int, misses: Int)>((0, 0))

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.realtimeConnections = registry.makeGauge(
            descriptor: .init(
                namespace: "pyat",
                metricName: "realtime",
                unitName: "connections",
                helpText: "Open realtime connections (WebSocket and SSE)"
            )
        )
        self.realtimeEventsDelivered = registry.makeCounter(
            descriptor: .init(
                namespace: "pyat",
                metricName: "realtime_events_delivered",
                unitName: "total",
                helpText: "Events delivered to realtime subscribers"
            )
        )
        let lookups = MetricNameDescriptor(
            namespace: "pyat",
            metricName: "record_cache_lookups",
            unitName: "total",
            helpText: "Record reads looked up in the record read cache, by result"
        )
        self.recordCacheLookups = (
            registry.makeCounter(descriptor: lookups, labels: [("result", "hit")]),
            registry.makeCounter(descriptor: lookups, labels: [("result", "miss")])
        )
        self.recordCacheEntries = registry.makeGauge(
            descriptor: .init(
                namespace: "pyat",
                metricName: "record_cache",
                unitName: "entries",
                helpText: "Records held by the record read cache"
            )
        )
        self.recordCacheBytes = registry.makeGauge(
            descriptor: .init(
                namespace: "pyat",
                metricName: "record_cache",
                unitName: "bytes",
                helpText: "Memory accounted to the record read cache"
            )
        )
        self.realtimeSlowConsumers = registry.makeCounter(
            descriptor: .init(
                namespace: "pyat",
                metricName: "realtime_slow_consumer_disconnects",
                unitName: "total",
                helpText: "Realtime connections cut off for falling too far behind"
            )
        )
        self.realtimeRefusals = registry.makeCounter(
            descriptor: .init(
                namespace: "pyat",
                metricName: "realtime_connections_refused",
                unitName: "total",
                helpText: "Realtime connections refused because their user held the most allowed"
            )
        )
    }

    /// Brings the record cache's figures up to date (called before each exposition).
    func observe(recordCache statistics: (entries: Int, bytes: Int, hits: Int, misses: Int)) {
        let (hits, misses) = recordCacheSeen.withLock { seen in
            defer { seen = (statistics.hits, statistics.misses) }
            return (statistics.hits - seen.hits, statistics.misses - seen.misses)
        }
        if hits > 0 { recordCacheLookups.hits.increment(by: Int64(hits)) }
        if misses > 0 { recordCacheLookups.misses.increment(by: Int64(misses)) }
        recordCacheEntries.set(Int64(statistics.entries))
        recordCacheBytes.set(Int64(statistics.bytes))
    }

    func realtimeConnectionOpened() { realtimeConnections.increment() }
    func realtimeConnectionClosed() { realtimeConnections.decrement() }
    func realtimeEventDelivered() { realtimeEventsDelivered.increment() }
    func realtimeSlowConsumerDisconnected() { realtimeSlowConsumers.increment() }
    func realtimeConnectionRefused() { realtimeRefusals.increment() }

    /// Requests served since start.
    public var requests: Int { requestCount.load(ordering: .relaxed) }

    func record(method: String, route: String, status: Int, duration: Duration) {
        requestCount.add(1, ordering: .relaxed)
        let key = SeriesKey(method: method, route: route, status: status)
        let (counter, histogram) = series.withLock { series in
            if let existing = series[key] { return existing }
            let made = makeSeries(key)
            series[key] = made
            return made
        }
        counter.increment()
        histogram.record(duration)
    }

    private func makeSeries(_ key: SeriesKey) -> (Counter, DurationHistogram) {
        let counter = registry.makeCounter(
            descriptor: .init(
                namespace: "pyat",
                metricName: "http_requests",
                unitName: "total",
                helpText: "HTTP requests served"
            ),
            labels: [("method", key.method), ("route", key.route), ("status", String(key.status))]
        )
        let histogram = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "pyat",
                metricName: "http_request_duration",
                unitName: "seconds",
                helpText: "HTTP request latency"
            ),
            labels: [("method", key.method), ("route", key.route)],
            buckets: [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ]
        )
        return (counter, histogram)
    }

    /// The Prometheus text exposition.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
