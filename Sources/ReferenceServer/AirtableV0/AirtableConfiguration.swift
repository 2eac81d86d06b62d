import Foundation

/// How the Airtable API under `/v0` behaves: its rate limit, attachments by URL and signed attachment
/// URLs. Every property has a default.
public struct AirtableConfiguration: Sendable {
    /// Whether Airtable's request rate applies (`pyat serve --airtable-limits`): past
    /// ``requestsPerSecondPerBase`` requests a second to one base, the answer is 429
    /// `TOO_MANY_REQUESTS` with `Retry-After`, decided before the request has any effect. Off by
    /// default: only Airtable's write and page sizes (10 records a write, 100 a page) apply.
    public var enforceRateLimit: Bool
    /// Requests a second to one base, Airtable's 5 by default; a base may use them all at once and
    /// regains them evenly over the second.
    public var requestsPerSecondPerBase: Int
    /// The most bases whose rate is tracked at once (memory stays bounded whatever ids are sent);
    /// past it, untracked bases share one allowance until tracked ones have refilled.
    /// Default: 50,000.
    public var maximumTrackedBases: Int
    /// How long a write waits for the attachments it names by URL (`[{"url": …}]`), all of them
    /// together; past it the write is refused (422 `INVALID_ATTACHMENT_OBJECT`) and writes nothing.
    /// Default: 30 seconds.
    public var attachmentDownloadTimeout: Duration
    /// The most attachments one write may name by URL. Default: 20.
    public var maximumAttachmentDownloads: Int
    /// Whether attachment URLs may name loopback addresses (`pyat serve --demo`, or
    /// `--downloads-allow-private`). Default: `false`.
    public var allowLoopbackDownloads: Bool
    /// Whether attachment URLs may name private-network and other non-public addresses (the same
    /// check as webhook targets). Default: `false`.
    public var allowPrivateDownloads: Bool
    /// How long the attachment URLs in answers work without a token. They expire on the hour after
    /// this much time, so answers within one hour share URLs (and caches). Default: 2 hours, as on
    /// Airtable.
    public var attachmentURLLifetime: TimeInterval
    /// The origin attachment URLs start with (`https://pyat.example.com`), for a server behind a
    /// proxy; `nil` (the default) uses `http://` and the request's `Host`.
    public var publicURL: String?
    /// The most Airtable webhooks one base may have. Default: 10, as on Airtable.
    public var maximumWebhooksPerBase: Int
    /// How long an Airtable webhook lives unless refreshed (listing its payloads refreshes it too);
    /// an expired one records no payloads. Default: 7 days, as on Airtable.
    public var webhookLifetime: TimeInterval
    /// How long a webhook's payloads are kept. Default: 7 days, as on Airtable.
    public var payloadRetention: TimeInterval
    /// Ping retries after a failed notification, backing off from 5 s doubling to at most 5 minutes.
    /// Default: 8.
    public var maximumPingRetries: Int

    public init(
        enforceRateLimit: Bool = false,
        requestsPerSecondPerBase: Int = 5,
        maximumTrackedBases: Int = 50_000,
        attachmentDownloadTimeout: Duration = .seconds(30),
        maximumAttachmentDownloads: Int = 20,
        allowLoopbackDownloads: Bool = false,
        allowPrivateDownloads: Bool = false,
        attachmentURLLifetime: TimeInterval = 2 * 3600,
        publicURL: String? = nil,
        maximumWebhooksPerBase: Int = 10,
        webhookLifetime: TimeInterval = 7 * 24 * 3600,
        payloadRetention: TimeInterval = 7 * 24 * 3600,
        maximumPingRetries: Int = 8
    ) {
        self.enforceRateLimit = enforceRateLimit
        self.requestsPerSecondPerBase = requestsPerSecondPerBase
        self.maximumTrackedBases = maximumTrackedBases
        self.attachmentDownloadTimeout = attachmentDownloadTimeout
        self.maximumAttachmentDownloads = maximumAttachmentDownloads
        self.allowLoopbackDownloads = allowLoopbackDownloads
        self.allowPrivateDownloads = allowPrivateDownloads
        self.attachmentURLLifetime = attachmentURLLifetime
        self.publicURL = publicURL
        self.maximumWebhooksPerBase = maximumWebhooksPerBase
        self.webhookLifetime = webhookLifetime
        self.payloadRetention = payloadRetention
        self.maximumPingRetries = maximumPingRetries
    }
}
