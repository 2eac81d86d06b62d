import Foundation
import HTTPTypes
import PyAirtableModels

/// How often the auth routes may be tried. Every property has a default.
///
/// Sign-ins (`POST /auth/login`) and registrations (`POST /auth/register`) share one allowance per
/// account (the email) and one per client address; refreshes (`POST /auth/refresh`) have their
/// own. Past an allowance the answer is 429 `RATE_LIMITED` with `Retry-After`. Allowances refill
/// evenly over their period, so nobody is locked out for longer than one attempt takes to come back.
public struct AuthThrottleConfiguration: Sendable {
    /// How many attempts one key may make, regained evenly over `period` seconds.
    public struct Limit: Sendable, Hashable {
        public var attempts: Int
        public var period: TimeInterval

        public init(attempts: Int, period: TimeInterval) {
            self.attempts = attempts
            self.period = period
        }
    }

    /// Whether the auth routes are throttled at all.
    public var enabled: Bool
    /// Sign-in and registration attempts per account (email). A successful sign-in gives its
    /// attempt back, so only failures add up. Default: 10 per 5 minutes.
    public var signInPerAccount: Limit
    /// Sign-in and registration attempts per client address (IPv6: per /64). Default: 30 a minute.
    public var signInPerAddress: Limit
    /// Refreshes per account (the refresh token's user). Default: 30 per 5 minutes.
    public var refreshPerAccount: Limit
    /// Refreshes per client address (IPv6: per /64). Default: 120 a minute.
    public var refreshPerAddress: Limit
    /// The most accounts, and the most addresses, tracked per allowance; past it, new keys share
    /// one allowance until tracked ones have refilled, so memory stays bounded whatever is sprayed.
    /// Default: 50,000.
    public var maximumTrackedKeys: Int

    public init(
        enabled: Bool = true,
        signInPerAccount: Limit = Limit(attempts: 10, period: 300),
        signInPerAddress: Limit = Limit(attempts: 30, period: 60),
        refreshPerAccount: Limit = Limit(attempts: 30, period: 300),
        refreshPerAddress: Limit = Limit(attempts: 120, period: 60),
        maximumTrackedKeys: Int = 50_000
    ) {
        self.enabled = enabled
        self.signInPerAccount = signInPerAccount
        self.signInPerAddress = signInPerAddress
        self.refreshPerAccount = refreshPerAccount
        self.refreshPerAddress = refreshPerAddress
        self.maximumTrackedKeys = maximumTrackedKeys
    }
}

/// The allowances of the auth routes (see ``AuthThrottleConfiguration``).
final class AuthThrottle: Sendable {
    /// The kind of attempt: each has its own allowances.
    enum Attempt: Sendable {
        /// `POST /auth/login` and `POST /auth/register`.
        case signIn
        /// `POST /auth/refresh`.
        case refresh
    }

    let configuration: AuthThrottleConfiguration
    private let signInAccounts: RateLimitTable
    private let signInAddresses: RateLimitTable
    private let refreshAccounts: RateLimitTable
    private let refreshAddresses: RateLimitTable

    init(configuration: AuthThrottleConfiguration) {
        self.configuration = configuration
        func table(_ limit: AuthThrottleConfiguration.Limit) -> RateLimitTable {
            RateLimitTable(limit: limit, maximumKeys: configuration.maximumTrackedKeys)
        }
        signInAccounts = table(configuration.signInPerAccount)
        signInAddresses = table(configuration.signInPerAddress)
        refreshAccounts = table(configuration.refreshPerAccount)
        refreshAddresses = table(configuration.refreshPerAddress)
    }

    /// Takes an attempt from the client address's allowance, or throws 429.
    func admit(_ attempt: Attempt, address: ClientAddress?, now: Date) throws {
        guard configuration.enabled, let address else { return }
        let table = attempt == .signIn ? signInAddresses : refreshAddresses
        if let wait = table.take(address, now: now) {
            throw ServerError.rateLimited(
                "too many \(attempt.noun) from this address",
                retryAfter: wait
            )
        }
    }

    /// Takes an attempt from the account's allowance, or throws 429. The message is the same for
    /// accounts that exist and those that do not.
    func admit(_ attempt: Attempt, account: String, now: Date) throws {
        guard configuration.enabled else { return }
        let table = attempt == .signIn ? signInAccounts : refreshAccounts
        if let wait = table.take(account, now: now) {
            throw ServerError.rateLimited("too many \(attempt.noun) for this account", retryAfter: wait)
        }
    }

    /// Gives an account its sign-in attempt back (it succeeded).
    func refundSignIn(account: String, now: Date) {
        guard configuration.enabled else { return }
        signInAccounts.refund(account, now: now)
    }

    /// How many keys each allowance tracks: sign-in accounts, sign-in addresses, refresh accounts,
    /// refresh addresses.
    var trackedKeys: [Int] {
        [signInAccounts.count, signInAddresses.count, refreshAccounts.count, refreshAddresses.count]
    }
}

extension AuthThrottle.Attempt {
    fileprivate var noun: String {
        switch self {
        case .signIn: "sign-in attempts"
        case .refresh: "token refreshes"
        }
    }
}

extension ServerError {
    /// 429 `RATE_LIMITED` with `Retry-After` in whole seconds (at least 1).
    static func rateLimited(_ message: String, retryAfter seconds: TimeInterval) -> ServerError {
        let whole = max(1, Int(seconds.rounded(.up)))
        return ServerError(
            .tooManyRequests,
            .rateLimited,
            "\(message); retry in \(whole) s",
            headers: [.retryAfter: String(whole)]
        )
    }
}
