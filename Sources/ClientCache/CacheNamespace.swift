/// The account a cache belongs to: a server and a user on it.
///
/// Every key lives inside a namespace, so two accounts sharing one cache file never see each other's
/// entries, and invalidation in one never touches the other.
public struct CacheNamespace: Sendable, Hashable, CustomStringConvertible {
    /// The server's base URL.
    public var serverURL: String
    /// The user's id on that server.
    public var user: String

    /// Makes a namespace.
    public init(serverURL: String, user: String) {
        self.serverURL = serverURL
        self.user = user
    }

    /// The namespace as stored in the cache file.
    public var description: String { "\(user)@\(serverURL)" }
}
