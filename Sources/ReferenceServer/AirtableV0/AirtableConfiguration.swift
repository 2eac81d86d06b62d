import Foundation

/// How the Airtable API under `/v0` behaves. Every property has a default.
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

    public init(
        enforceRateLimit: Bool = false,
        requestsPerSecondPerBase: Int = 5,
        maximumTrackedBases: Int = 50_000
    ) {
        self.enforceRateLimit = enforceRateLimit
        self.requestsPerSecondPerBase = requestsPerSecondPerBase
        self.maximumTrackedBases = maximumTrackedBases
    }
}
