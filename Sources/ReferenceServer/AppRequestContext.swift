import Foundation
import Hummingbird
import Logging
import NIOCore
import PyAirtableModels

/// Who is calling: the user, and how they proved it.
public struct Principal: Sendable, Hashable {
    public enum Credential: Sendable, Hashable {
        case accessToken
        case personalAccessToken(AccessTokenID)
    }

    public var userID: UserID
    public var credential: Credential
}

/// The per-request context: request id, the connection's remote address, the authenticated
/// principal and the idempotency claim.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The address of the connection's other end (a proxy's, behind one: see
    /// ``ServerConfiguration/trustedProxies``).
    public let remoteAddress: SocketAddress?
    public var requestID: String = ""
    public var principal: Principal?
    /// Set by ``IdempotencyMiddleware`` on writes that carry `Idempotency-Key`.
    var idempotency: IdempotencyClaim?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are read by ``BodyReader`` with the configured limit, not by this value.
    public var maxUploadSize: Int { .max }

    /// The authenticated user, or 401.
    func requireUser() throws -> UserID {
        guard let principal else { throw ServerError.unauthorized("authentication required") }
        return principal.userID
    }
}
