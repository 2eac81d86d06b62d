import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import PyAirtableModels
import ServiceLifecycle
import Synchronization

/// The server's connections: HTTP/1.1 as Hummingbird serves it, and `GET /api/v1/ws` upgraded to a
/// WebSocket that ``RealtimeWebSocketHandler`` serves from the channel pipeline.
///
/// Hummingbird's WebSocket channel keeps a task per connection for the connection's whole life, and
/// that task's stack was most of an idle connection's memory (about 21 KB of its 34). Here the
/// connection's task ends once the upgrade is done: an idle WebSocket is its channel, its handlers
/// and its hub state, nothing more.
struct RealtimeServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case failedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let realtime: RealtimeController
    /// The longest request line plus headers (``RequestLimits/maximumRequestHeadSize``).
    let maximumRequestHeadSize: Int

    init(
        responder: @escaping HTTPChannelHandler.Responder,
        realtime: RealtimeController,
        maximumRequestHeadSize: Int = 80 * 1024
    ) {
        self.responder = Self.upgradeAwareResponder(responder)
        self.realtime = realtime
        self.maximumRequestHeadSize = maximumRequestHeadSize
    }

    /// An upgrade request on a connection that already served plain HTTP cannot be upgraded there:
    /// it is redirected to itself on a new connection (as Hummingbird's WebSocket channel does).
    private static func upgradeAwareResponder(
        _ responder: @escaping HTTPChannelHandler.Responder
    )
        -> HTTPChannelHandler.Responder
    {
        struct RedirectCloseError: Error {}
        return { request, responseWriter, channel in
            if request.headers[.upgrade]?.lowercased() == "websocket" {
                var path = request.uri.path
                if let query = request.uri.query { path += "?\(query)" }
                let response = HTTPResponse(
                    status: .temporaryRedirect,
                    headerFields: [.connection: "close", .location: path]
                )
                try await responseWriter.writeResponse(response)
                throw RedirectCloseError()
            }
            try await responder(request, responseWriter, channel)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let upgradeAttempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let decision = NIOLoopBoundBox<RealtimeController.UpgradeDecision?>(nil, eventLoop: channel.eventLoop)
            let realtime = self.realtime
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: realtime.maximumFrameSize,
                shouldUpgrade: { channel, head in
                    upgradeAttempted.value = true
                    let promise = channel.eventLoop.makePromise(of: RealtimeController.UpgradeDecision?.self)
                    promise.completeWithTask { await realtime.decideUpgrade(head) }
                    return promise.futureResult.map { decided in
                        decision.value = decided
                        return decided == nil ? nil : HTTPHeaders()
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let decided = decision.value else { throw ChannelError.inappropriateOperationForState }
                        try realtime.configureWebSocket(channel: channel, decision: decided)
                        return UpgradeResult.webSocket
                    }
                }
            )
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: nil, logger: logger)
                        )
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        return upgradeAttempted.value
                            ? UpgradeResult.failedUpgrade(asyncChannel) : UpgradeResult.notUpgraded(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(
                upgradeConfiguration: serverUpgrade
            )
            configuration.enablePipelining = false
            // NIO counts the request line (the URL) as a header field too.
            configuration.decoderConfiguration.maxHeaderFieldSize = self.maximumRequestHeadSize
            configuration.decoderConfiguration.maxHeaderListSize = self.maximumRequestHeadSize
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: configuration
            )
            let decoder = try channel.pipeline.syncOperations.handler(
                type: ByteToMessageHandler<HTTPRequestDecoder>.self
            )
            try channel.pipeline.syncOperations.addHandler(RequestHeadErrorHandler(), position: .after(decoder))
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http1):
                await handleHTTP(asyncChannel: http1, logger: logger)
            case .failedUpgrade(let http1):
                try await http1.executeThenClose { _, outbound in
                    let head = HTTPResponse(
                        status: .badRequest,
                        headerFields: [.connection: "close", .contentLength: "0"]
                    )
                    try await outbound.write(contentsOf: [.head(head), .end(nil)])
                }
            case .webSocket:
                // The pipeline serves the socket from here on; this connection's task ends.
                return
            }
        } catch {
            logger.trace("connection ended during the upgrade", metadata: ["error": "\(error)"])
        }
    }
}
