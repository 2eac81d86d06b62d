import Foundation

/// A way of receiving events from the server.
public enum RealtimeTransport: String, Sendable, Hashable, CaseIterable, Codable {
    /// `GET /api/v1/ws`: one WebSocket multiplexing every subscription.
    case webSocket = "ws"
    /// `GET /api/v1/events`: Server-Sent Events, resumed with `Last-Event-ID`.
    case serverSentEvents = "sse"
    /// `GET /api/v1/events/log`: pages of the event log, asked for at an interval.
    case polling = "poll"
}

/// Where the realtime connection is.
public enum RealtimeConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Not started: no subscription yet.
    case idle
    /// Establishing a connection over a transport.
    case connecting(RealtimeTransport)
    /// Receiving events over a transport.
    case connected(RealtimeTransport)
    /// Waiting before the next attempt, after a failure.
    case waiting(retryIn: Duration, attempt: Int)
    /// Closed for good (``RealtimeClient/close()``).
    case closed

    public var description: String {
        switch self {
        case .idle: "idle"
        case .connecting(let transport): "connecting (\(transport.rawValue))"
        case .connected(let transport): "connected (\(transport.rawValue))"
        case .waiting(let delay, let attempt): "waiting \(delay) before attempt \(attempt)"
        case .closed: "closed"
        }
    }
}

/// What a subscription yields.
public enum RealtimeUpdate: Sendable, Hashable {
    /// An event, in `seq` order, each once.
    case event(Event)
    /// The events since the subscription's position are no longer retained by the server: refetch what
    /// you show, then events continue after `seq`.
    case reset(seq: Int64)
}

/// How the realtime connection behaves.
public struct RealtimeSettings: Sendable {
    /// The transports to try, best first; when one cannot be established the next is used, and the
    /// connection goes back up to a better one every ``upgradeInterval``.
    public var transports: [RealtimeTransport]
    /// The first backoff after a failure; doubled per attempt, with equal jitter.
    public var initialBackoff: Duration
    /// The longest backoff.
    public var maximumBackoff: Duration
    /// How long a connection must last for the backoff to start again from ``initialBackoff``.
    public var stableAfter: Duration
    /// How often the polling transport asks for new events.
    public var pollInterval: Duration
    /// How long a fallback transport (SSE, polling) runs before a better one is tried again.
    public var upgradeInterval: Duration
    /// The WebSocket ping period (the server's idle timeout must be longer).
    public var pingInterval: Duration
    /// How long the connection stays open after the last subscription ends, in case another follows.
    public var lingerAfterLastSubscription: Duration
    /// How long an SSE stream may stay silent (the server sends a heartbeat every 15 s) before it is
    /// taken for dead and reconnected.
    public var streamSilenceLimit: Duration
    /// How many updates a subscription buffers for a consumer that is behind; past it the subscription
    /// ends with an error rather than growing memory without bound.
    public var subscriptionBuffer: Int
    /// Whether events update the client's cache (drop what they change), so cached reads stay fresh
    /// while connected.
    public var updatesCache: Bool
    /// The largest message accepted from the server, in bytes (default 16 MiB): a WebSocket message
    /// (all its frames together), or a Server-Sent Event (all its lines together). A larger one is a
    /// protocol error: the connection is dropped and reconnected, rather than memory growing without
    /// bound. Events carry one record each, so the default leaves room for the largest record.
    public var maximumMessageSize: Int

    public init(
        transports: [RealtimeTransport] = RealtimeTransport.allCases,
        initialBackoff: Duration = .milliseconds(500),
        maximumBackoff: Duration = .seconds(30),
        stableAfter: Duration = .seconds(60),
        pollInterval: Duration = .seconds(1),
        upgradeInterval: Duration = .seconds(60),
        pingInterval: Duration = .seconds(20),
        streamSilenceLimit: Duration = .seconds(45),
        lingerAfterLastSubscription: Duration = .seconds(30),
        subscriptionBuffer: Int = 100_000,
        updatesCache: Bool = true,
        maximumMessageSize: Int = 16 * 1024 * 1024
    ) {
        self.transports = transports
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.stableAfter = stableAfter
        self.pollInterval = pollInterval
        self.upgradeInterval = upgradeInterval
        self.pingInterval = pingInterval
        self.streamSilenceLimit = streamSilenceLimit
        self.lingerAfterLastSubscription = lingerAfterLastSubscription
        self.subscriptionBuffer = subscriptionBuffer
        self.updatesCache = updatesCache
        self.maximumMessageSize = maximumMessageSize
    }

    /// The backoff before attempt `attempt` (1-based): equal jitter over `initial · 2^(attempt-1)`,
    /// capped at the maximum — half fixed, half random.
    public func backoff(attempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let initial = Double(initialBackoff.components.seconds) + Double(initialBackoff.components.attoseconds) / 1e18
        let maximum = Double(maximumBackoff.components.seconds) + Double(maximumBackoff.components.attoseconds) / 1e18
        let ceiling = min(maximum, initial * pow(2, Double(max(0, attempt - 1))))
        let seconds = ceiling / 2 + ceiling / 2 * min(1, max(0, random))
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}
