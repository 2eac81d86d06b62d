/// How the realtime routes (`GET /api/v1/ws`, `GET /api/v1/events`) behave. Every property has a default.
public struct RealtimeConfiguration: Sendable {
    /// The most messages held for one connection; a consumer further behind is disconnected.
    public var bufferSize: Int
    /// The most bytes of messages held for one connection (their size on the wire, about); a
    /// consumer further behind is disconnected. A single larger message still goes to a consumer
    /// with nothing else waiting.
    public var maximumBufferedBytes: Int
    /// The most realtime connections (WebSockets and SSE streams together) one user may hold open;
    /// past it a new one is refused: 429 `RATE_LIMITED` for SSE, an `error` frame and close code 4429
    /// for a WebSocket. Polling `GET /events/log` holds no connection and is not counted.
    public var maximumConnectionsPerUser: Int
    /// How often an SSE stream sends a `: heartbeat` comment.
    public var heartbeatInterval: Duration
    /// How long a WebSocket may go without any bytes from the client (pongs count) before it is dropped.
    public var idleTimeout: Duration
    /// How often the server pings each WebSocket; a ping unanswered by the next one closes the connection.
    public var pingInterval: Duration
    /// How long a closing WebSocket may take to flush its close frame before the socket is dropped.
    public var closeTimeout: Duration
    /// The most subscriptions one WebSocket may hold.
    public var maximumSubscriptions: Int
    /// The largest client frame accepted, in bytes (default 64 KiB). A larger frame closes the socket
    /// with code 1009 (message too big).
    public var maximumFrameSize: Int
    /// The deepest nesting of arrays and objects in a client frame (default 16); a deeper frame is
    /// answered with an `error` frame (`VALIDATION_ERROR`, 400) before any decoder walks it, and the
    /// connection stays open.
    public var maximumFrameDepth: Int
    /// How many events one catch-up read of the log returns.
    public var catchUpPageSize: Int
    /// Whether `GET /api/v1/ws` upgrades (off: the upgrade is refused, and clients fall back to SSE).
    public var webSocketEnabled: Bool
    /// Whether `GET /api/v1/events` streams (off: 404, and clients fall back to polling the log).
    public var serverSentEventsEnabled: Bool

    public init(
        bufferSize: Int = 4096,
        maximumBufferedBytes: Int = 4 << 20,
        maximumConnectionsPerUser: Int = 64,
        heartbeatInterval: Duration = .seconds(15),
        idleTimeout: Duration = .seconds(90),
        pingInterval: Duration = .seconds(30),
        closeTimeout: Duration = .seconds(5),
        maximumSubscriptions: Int = 100,
        maximumFrameSize: Int = 64 * 1024,
        maximumFrameDepth: Int = 16,
        catchUpPageSize: Int = 500,
        webSocketEnabled: Bool = true,
        serverSentEventsEnabled: Bool = true
    ) {
        self.bufferSize = bufferSize
        self.maximumBufferedBytes = maximumBufferedBytes
        self.maximumConnectionsPerUser = maximumConnectionsPerUser
        self.heartbeatInterval = heartbeatInterval
        self.idleTimeout = idleTimeout
        self.pingInterval = pingInterval
        self.closeTimeout = closeTimeout
        self.maximumSubscriptions = maximumSubscriptions
        self.maximumFrameSize = maximumFrameSize
        self.maximumFrameDepth = maximumFrameDepth
        self.catchUpPageSize = catchUpPageSize
        self.webSocketEnabled = webSocketEnabled
        self.serverSentEventsEnabled = serverSentEventsEnabled
    }
}
