/// An error thrown by ``ClientCache``.
public struct ClientCacheError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: String, Sendable, Hashable {
        case notCached
        case notModifiedWithoutEntry
    }

    private let code: Code
    /// The key concerned.
    public let key: String

    private init(_ code: Code, key: String) {
        self.code = code
        self.key = key
    }

    /// A `cacheOnly` fetch found nothing usable.
    public static func notCached(_ key: String) -> Self { Self(.notCached, key: key) }

    /// A loader answered ``CacheLoad/notModified`` but nothing was cached.
    public static func notModifiedWithoutEntry(_ key: String) -> Self { Self(.notModifiedWithoutEntry, key: key) }

    /// A short description, safe as a metric label.
    public var shortDescription: String { code.rawValue }

    public var description: String { "ClientCacheError.\(code.rawValue)(\(key))" }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code && lhs.key == rhs.key }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(key)
    }

    /// Matches any error of the same kind, whatever its key.
    public static func ~= (pattern: Self, error: any Error) -> Bool {
        (error as? Self)?.code == pattern.code
    }
}
