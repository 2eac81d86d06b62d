import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import PyAirtableModels
import ServiceLifecycle

/// `GET /api/v1/ws` (WebSocket) and `GET /api/v1/events` (Server-Sent Events), both fed by ``RealtimeHub``.
///
/// The WebSocket upgrade runs before routing (see ``shouldUpgrade(request:channel:logger:)``); the
/// router's `GET /ws` answers requests that are not upgrades: 401 without credentials, else 426.
struct RealtimeController {
    let services: ServerServices
    let store: any EventLogRepository

    func addRoutes(to api: RouterGroup<AppRequestContext>) {
        api.get("ws", use: webSocketWithoutUpgrade)
        api.get("events", use: serverSentEvents)
    }

    private var configuration: RealtimeConfiguration { services.configuration.realtime }

    // MARK: - Authentication

    /// Who a realtime connection serves, and until when its credential is good.
    struct Credential: Sendable {
        var user: UserID
        /// When the access token expires; `nil` for personal access tokens.
        var expiresAt: Date?
    }

    /// The credential of `Authorization: Bearer …`, else of `?access_token=` (browsers' `EventSource`
    /// and `WebSocket` cannot set headers).
    /// - Returns: `nil` when the request carries neither.
    /// - Throws: 401 when a credential is present but invalid or expired.
    private func authenticate(authorization: String?, accessToken: String?) async throws -> Credential? {
        let token: String
        if let authorization {
            guard authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else {
                throw ServerError.unauthorized("the Authorization header must be 'Bearer <token>'")
            }
            token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        } else if let accessToken, !accessToken.isEmpty {
            token = accessToken
        } else {
            return nil
        }
        guard let principal = try await services.auth.authenticate(bearer: token) else {
            throw ServerError.unauthorized("the access token is invalid or expired")
        }
        let expiresAt = principal.credential == .accessToken ? Self.expiry(ofAccessToken: token) : nil
        return Credential(user: principal.userID, expiresAt: expiresAt)
    }

    private func requireCredential(_ request: Request) async throws -> Credential {
        let credential = try await authenticate(
            authorization: request.headers[.authorization],
            accessToken: request.uri.queryParameters.get("access_token")
        )
        guard let credential else { throw ServerError.unauthorized("authentication required") }
        return credential
    }

    /// The `exp` claim of an access JWT the authenticator already verified.
    static func expiry(ofAccessToken token: String) -> Date? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        struct Claims: Decodable { var exp: Double }
        guard let data = Data(base64Encoded: base64), let claims = try? JSONDecoder().decode(Claims.self, from: data)
        else { return nil }
        return Date(timeIntervalSince1970: claims.exp)
    }

    /// How long until `credential` expires, on the server's clock; `nil` when it does not.
    func lifetime(of credential: Credential) -> Duration? {
        guard let expiresAt = credential.expiresAt else { return nil }
        let seconds = max(0, expiresAt.timeIntervalSince(services.configuration.now()))
        return .milliseconds(Int64(seconds * 1000))
    }

    static let credentialExpiredError = APIErrorDetail(
        type: .auth,
        code: 401,
        message: "the access token expired: reconnect with a fresh one and resume from the last seq received"
    )

    // MARK: - WebSocket

    /// `GET /ws` without an upgrade.
    @Sendable func webSocketWithoutUpgrade(_ request: Request, context: AppRequestContext) async throws -> Response {
        _ = try await requireCredential(request)
        throw ServerError(
            .upgradeRequired,
            .validation,
            "GET /api/v1/ws is a WebSocket endpoint: send an upgrade request",
            headers: [.upgrade: "websocket"]
        )
    }

    /// The decision on a WebSocket upgrade: the credential, or why it failed.
    typealias UpgradeDecision = Result<Credential, ServerError>

    var maximumFrameSize: Int { configuration.maximumFrameSize }
    var closeTimeout: Duration { configuration.closeTimeout }

    /// Decides the WebSocket upgrade of `GET /api/v1/ws`; `nil` refuses it (every other path).
    ///
    /// Credentials are checked before the upgrade; the upgrade is accepted even when they fail, so the
    /// client can read why: its first frame is answered with an `error` frame (`AUTH_ERROR`, 401), then
    /// close code 4401 (reason "unauthorized"). A refused upgrade could only answer a bare 400.
    func decideUpgrade(_ head: HTTPRequestHead) async -> UpgradeDecision? {
        let target = URLComponents(string: head.uri)
        guard head.method == .GET, target?.path == "/api/v1/ws", configuration.webSocketEnabled else {
            return nil
        }
        do {
            if let credential = try await authenticate(
                authorization: head.headers.first(name: "Authorization"),
                accessToken: target?.queryItems?.first { $0.name == "access_token" }?.value
            ) {
                return .success(credential)
            }
            return .failure(.unauthorized("authentication required"))
        } catch let error as ServerError {
            return .failure(error)
        } catch let error as StorageError {
            return .failure(ErrorMiddleware.serverError(for: error))
        } catch {
            return .failure(ServerError(.internalServerError, .server, "authentication failed"))
        }
    }

    /// Puts the realtime handlers on an upgraded channel (on its event loop).
    ///
    /// Timers, not tasks, watch the connection: the idle timeout (any byte from the client, pongs
    /// included, counts as traffic; a silent peer is dropped) and the pinger.
    func configureWebSocket(channel: any Channel, decision: UpgradeDecision) throws {
        let pipeline = channel.pipeline.syncOperations
        // The handlers below read as data comes; nothing pulls reads the way an async channel does.
        try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        try pipeline.addHandlers(
            [IdleStateHandler(readTimeout: TimeAmount(configuration.idleTimeout)), IdleConnectionCloser()],
            position: .first
        )
        if case .success = decision {
            try pipeline.addHandler(WebSocketPinger(interval: TimeAmount(configuration.pingInterval)), position: .first)
        }
        try pipeline.addHandler(
            NIOWebSocketFrameAggregator(
                minNonFinalFragmentSize: 0,
                maxAccumulatedFrameCount: 1024,
                maxAccumulatedFrameSize: configuration.maximumFrameSize
            )
        )
        try pipeline.addHandler(
            RealtimeWebSocketHandler(controller: self, decision: decision, sockets: services.realtime.sockets)
        )
    }

    /// Handles one client frame of connection `connection`.
    func handle(text: String, connection: Int) async {
        let hub = services.realtime
        if let offset = JSONNesting.offsetPastDepth(configuration.maximumFrameDepth, in: text.utf8) {
            await hub.reply(
                .error(
                    subscription: nil,
                    error: Self.badFrame(
                        "the frame nests deeper than \(configuration.maximumFrameDepth) levels "
                            + "(maximumFrameDepth) at byte \(offset)"
                    )
                ),
                connection: connection
            )
            return
        }
        let frame: RealtimeClientFrame
        do {
            frame = try JSONCoding.decoder.decode(RealtimeClientFrame.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            await hub.reply(
                .error(subscription: nil, error: Self.badFrame(ErrorMiddleware.describe(error))),
                connection: connection
            )
            return
        } catch {
            await hub.reply(
                .error(subscription: nil, error: Self.badFrame("the frame is not valid JSON")),
                connection: connection
            )
            return
        }
        switch frame {
        case .subscribe(let id, _, let filters, let since):
            guard !id.isEmpty, id.count <= 128 else {
                await hub.reply(
                    .error(subscription: nil, error: Self.badFrame("id must be 1 to 128 characters")),
                    connection: connection
                )
                return
            }
            if let since, since < 0 {
                await hub.reply(
                    .error(subscription: id, error: Self.badFrame("since must be a non-negative sequence number")),
                    connection: connection
                )
                return
            }
            await hub.subscribe(connection: connection, subscription: id, filter: filters, since: since)
        case .unsubscribe(let id):
            await hub.unsubscribe(connection: connection, subscription: id)
        case .ping:
            await hub.reply(.pong, connection: connection)
        }
    }

    static func badFrame(_ message: String) -> APIErrorDetail {
        APIErrorDetail(type: .validation, code: 400, message: message)
    }

    // MARK: - Server-Sent Events

    /// `GET /events`: the event log as Server-Sent Events, from `since` (or `Last-Event-ID`), then live.
    @Sendable func serverSentEvents(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard configuration.serverSentEventsEnabled else {
            throw ServerError(
                .notFound,
                .notFound,
                "Server-Sent Events are turned off on this server; poll /events/log"
            )
        }
        let credential = try await requireCredential(request)
        let user = credential.user
        let query = request.uri.queryParameters
        func id<Kind>(_ name: String) throws -> Identifier<Kind>? {
            guard let raw = query.get(name) else { return nil }
            guard let id = Identifier<Kind>(raw) else {
                throw ServerError.validation("'\(raw)' is not a valid \(name)", field: name)
            }
            return id
        }
        let filter = EventFilter(
            workspaceID: try id("workspace_id"),
            baseID: try id("base_id"),
            tableID: try id("table_id"),
            recordID: try id("record_id")
        )
        var since: Int64?
        if let raw = query.get("since") {
            // Digits only, as the document's pattern says (`+5` and 19-digit values are refused too).
            guard raw.utf8.count <= 18, raw.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int64(raw)
            else {
                throw ServerError.validation("since must be a non-negative sequence number", field: "since")
            }
            since = value
        }
        // A reconnecting EventSource sends the last id it saw: that wins over the URL's `since`.
        if let raw = request.headers[.lastEventID]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty {
            // Digits only, as the document's pattern says (`+5` and 19-digit values are refused too).
            guard raw.utf8.count <= 18, raw.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int64(raw)
            else {
                throw ServerError.validation(
                    "Last-Event-ID must be a non-negative sequence number",
                    field: "Last-Event-ID"
                )
            }
            since = value
        }
        if let since {
            // 410 RESYNC_REQUIRED, as `GET /events/log` answers, before the stream starts.
            _ = try await store.events(since: since, filter: filter, limit: 1, user: user)
        }
        let hub = services.realtime
        let connection = try await hub.connect(user: user)
        await hub.subscribe(connection: connection.id, subscription: "sse", filter: filter, since: since)
        let heartbeat = configuration.heartbeatInterval
        let capacity = configuration.bufferSize
        let maximumBytes = configuration.maximumBufferedBytes
        let lifetime = lifetime(of: credential)
        let clock = services.configuration.clock
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8",
            .cacheControl: "no-cache",
            .init("X-Accel-Buffering")!: "no",
        ]
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                let outbox = connection.outbox
                do {
                    // A server shutting down ends the stream; the client resumes from its last id.
                    try await withGracefulShutdownHandler {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                while true {
                                    try await clock.sleep(for: heartbeat)
                                    outbox.offer(.heartbeat)
                                }
                            }
                            if let lifetime {
                                group.addTask {
                                    try await clock.sleep(for: lifetime)
                                    outbox.finish(.credentialExpired)
                                }
                            }
                            try await writer.write(ByteBuffer(string: ": connected\n\n"))
                            while let message = await outbox.next() {
                                guard let text = message.serverSentEvent else { continue }
                                try await writer.write(ByteBuffer(string: text))
                                // After a reset the stream cannot go on without a gap: the client refetches.
                                if case .reset = message { break }
                            }
                            switch outbox.ending {
                            case .slowConsumer:
                                let error = RealtimeMessage.slowConsumerError(
                                    capacity: capacity,
                                    maximumBytes: maximumBytes
                                )
                                try await writer.write(ByteBuffer(string: RealtimeMessage.serverSentError(error)))
                            case .credentialExpired:
                                let error = Self.credentialExpiredError
                                try await writer.write(ByteBuffer(string: RealtimeMessage.serverSentError(error)))
                            case .closed, nil:
                                break
                            }
                            group.cancelAll()
                        }
                    } onGracefulShutdown: {
                        outbox.finish(.closed)
                    }
                } catch {
                    // The client went away; nothing more to write.
                }
                await hub.disconnect(connection.id)
                try? await writer.finish(nil)
            }
        )
    }
}
