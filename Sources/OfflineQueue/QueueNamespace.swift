/// The account a queue belongs to: a server and a user on it.
///
/// Every mutation and every temporary-id mapping lives inside a namespace, so two accounts sharing one
/// queue file never replay each other's writes.
public struct QueueNamespace: Sendable, Hashable, CustomStringConvertible {
    /// The server's base URL.
    public var serverURL: String
    /// The user's id on that server.
    public var user: String

    /// Makes a namespace.
    /// - Parameters:
    ///   - serverURL: The server's base URL.
    ///   - user: The user's id on that server.
    public init(serverURL: String, user: String) {
        self.serverURL = serverURL
        self.user = user
    }

    /// The namespace as stored in the queue file.
    public var description: String { "\(user)@\(serverURL)" }
}
