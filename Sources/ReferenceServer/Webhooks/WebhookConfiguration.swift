/// How webhooks are registered and delivered. Every property has a default.
public struct WebhookConfiguration: Sendable {
    /// Whether targets on loopback, private, link-local or unspecified addresses are allowed. Off by
    /// default: a webhook must not let a user make the server call its own network (server-side
    /// request forgery). Test servers turn it on.
    public var allowPrivateTargets: Bool
    /// Whether loopback targets (127.0.0.0/8, ::1, localhost) are allowed although private ones are
    /// not: a receiver on the same machine, as `pyat serve --demo` allows.
    public var allowLoopbackTargets: Bool
    /// How long one delivery attempt may take (connect, send, answer) before it counts as failed.
    public var attemptTimeout: Duration
    /// The wait after the first failed attempt; it doubles per attempt up to ``maximumBackoff``,
    /// and each wait is jittered down to half of it.
    public var initialBackoff: Duration
    /// The longest wait between two attempts.
    public var maximumBackoff: Duration
    /// A webhook is disabled after this many failed attempts in a row.
    public var maximumConsecutiveFailures: Int
    /// A webhook is also disabled when its attempts have failed, without a success, for this long.
    public var maximumFailureDuration: Duration
    /// The deliveries kept per webhook in its log; older finished ones are deleted.
    public var deliveryLogLimit: Int
    /// The most webhooks one base may have.
    public var maximumWebhooksPerBase: Int
    /// The longest target URL accepted.
    public var maximumURLLength: Int
    /// The most webhooks delivering at the same time (each delivers its own events in order).
    public var maximumConcurrentDeliveries: Int
    /// Whether the delivery worker runs with the application.
    public var deliveryEnabled: Bool

    public init(
        allowPrivateTargets: Bool = false,
        allowLoopbackTargets: Bool = false,
        attemptTimeout: Duration = .seconds(10),
        initialBackoff: Duration = .seconds(1),
        maximumBackoff: Duration = .seconds(600),
        maximumConsecutiveFailures: Int = 8,
        maximumFailureDuration: Duration = .seconds(3 * 24 * 3600),
        deliveryLogLimit: Int = 1000,
        maximumWebhooksPerBase: Int = 50,
        maximumURLLength: Int = 2048,
        maximumConcurrentDeliveries: Int = 16,
        deliveryEnabled: Bool = true
    ) {
        self.allowPrivateTargets = allowPrivateTargets
        self.allowLoopbackTargets = allowLoopbackTargets
        self.attemptTimeout = attemptTimeout
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.maximumConsecutiveFailures = maximumConsecutiveFailures
        self.maximumFailureDuration = maximumFailureDuration
        self.deliveryLogLimit = deliveryLogLimit
        self.maximumWebhooksPerBase = maximumWebhooksPerBase
        self.maximumURLLength = maximumURLLength
        self.maximumConcurrentDeliveries = maximumConcurrentDeliveries
        self.deliveryEnabled = deliveryEnabled
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones: exponential, capped, and
    /// jittered to between half and all of it so that many failing hooks do not retry in lockstep.
    func backoff(afterAttempts attempts: Int, jitter: Double = Double.random(in: 0.5...1)) -> Duration {
        let exponent = min(max(attempts - 1, 0), 40)
        let base = initialBackoff.seconds * Double(UInt64(1) << UInt64(exponent))
        let capped = min(base, maximumBackoff.seconds)
        return .milliseconds(Int64((capped * jitter * 1000).rounded()))
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
