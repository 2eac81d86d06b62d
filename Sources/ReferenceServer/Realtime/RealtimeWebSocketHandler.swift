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

/// Serves one realtime WebSocket from the channel pipeline: frames in, hub messages out.
///
/// Runs on the channel's event loop. The hub is an actor, so connecting and handling a client frame
/// run in short tasks; writes come from the connection's ``RealtimeOutbox``, whose drain task runs only
/// while messages wait.
final class RealtimeWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// Sent through the pipeline when the server shuts down.
    struct ServerShutdown: Sendable {}

    private enum State {
        /// Registering with the hub; client frames wait in ``inbound``.
        case connecting
        case connected(RealtimeHub.Connection)
        /// The credential failed (4401) or the user holds too many connections (4429): the first
        /// client frame is answered with the error, then the close code.
        case refused(ServerError)
        /// A close frame went out; the peer's answer, or the close timeout, ends the connection.
        case closing
        case closed
    }

    private let controller: RealtimeController
    private let decision: RealtimeController.UpgradeDecision
    private let sockets: RealtimeSockets
    private var state: State = .closed
    /// Client frames waiting for the hub, handled one at a time in arrival order.
    private let inbound: InboundFrames
    /// The hub's connection, from registration until the channel goes (whatever the state).
    private var connection: RealtimeHub.Connection?
    private var expiry: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?

    init(controller: RealtimeController, decision: RealtimeController.UpgradeDecision, sockets: RealtimeSockets) {
        self.controller = controller
        self.decision = decision
        self.sockets = sockets
        self.inbound = InboundFrames(controller: controller)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        sockets.add(context.channel)
        switch decision {
        case .failure(let error):
            state = .refused(error)
        case .success(let credential):
            state = .connecting
            let hub = controller.services.realtime
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            Task {
                let result: Result<RealtimeHub.Connection, any Error>
                do {
                    result = .success(try await hub.connect(user: credential.user))
                } catch {
                    result = .failure(error)
                }
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.connected(result, credential: credential, context: context)
                }
            }
        }
    }

    private func connected(
        _ result: Result<RealtimeHub.Connection, any Error>,
        credential: RealtimeController.Credential,
        context: ChannelHandlerContext
    ) {
        let hub = controller.services.realtime
        guard case .connecting = state else {
            // The socket went while the hub registered it.
            if case .success(let connection) = result { Task { await hub.disconnect(connection.id) } }
            return
        }
        let connection: RealtimeHub.Connection
        switch result {
        case .success(let made):
            connection = made
        case .failure(let error as ServerError) where error.status == .tooManyRequests:
            state = .refused(error)
            // Frames that came while connecting are answered now; else the first one to come is.
            if inbound.hasWaiting { refuse(error, context: context) }
            return
        case .failure(let error):
            controller.services.logger.error("realtime connect failed", metadata: ["error": "\(error)"])
            state = .refused(ServerError(.internalServerError, .server, "server error"))
            close(context: context, code: .unexpectedServerError, reason: "server error")
            return
        }
        state = .connected(connection)
        self.connection = connection
        let channel = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // Fan-out hands messages over without a task: the event loop writes them while the socket
        // takes them, and resumes when it can take more (channelWritabilityChanged).
        connection.outbox.drain(
            kicking: {
                channel.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.writeWaiting(context: context)
                }
            },
            onEnd: { ending in
                channel.eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.outboxEnded(ending, context: context)
                }
            }
        )
        if let lifetime = controller.lifetime(of: credential) {
            let outbox = connection.outbox
            expiry = context.eventLoop.scheduleTask(in: TimeAmount(lifetime)) { outbox.finish(.credentialExpired) }
        }
        // Frames that came while connecting go now, in order.
        inbound.start(connection: connection.id)
    }

    /// Writes the outbox's waiting messages while the socket is writable.
    private func writeWaiting(context: ChannelHandlerContext) {
        guard let connection else { return }
        var wrote = false
        while context.channel.isWritable, let message = connection.outbox.takeForDrain() {
            guard let text = message.webSocketText else { continue }
            for frame in Self.textFrames(text, allocator: context.channel.allocator) {
                context.write(wrapOutboundOut(frame), promise: nil)
            }
            wrote = true
        }
        if wrote { context.flush() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { writeWaiting(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            guard let text = String(validating: frame.unmaskedData.readableBytesView, as: UTF8.self) else {
                close(context: context, code: .dataInconsistentWithMessage, reason: "text frames must be UTF-8")
                return
            }
            received(text, context: context)
        case .binary:
            if case .connected(let connection) = state {
                let hub = controller.services.realtime
                Task {
                    await hub.reply(
                        .error(subscription: nil, error: RealtimeController.badFrame("frames must be JSON text")),
                        connection: connection.id
                    )
                }
            } else {
                received(nil, context: context)
            }
        case .ping:
            var data = frame.unmaskedData
            let pong = WebSocketFrame(
                fin: true,
                opcode: .pong,
                data: data.readSlice(length: data.readableBytes) ?? data
            )
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            receivedClose(frame, context: context)
        default:
            break
        }
    }

    /// A client frame's text (`nil` for one that is not text).
    private func received(_ text: String?, context: ChannelHandlerContext) {
        switch state {
        case .connecting, .connected:
            guard let text else { return }
            if !inbound.offer(text) {
                close(context: context, code: .policyViolation, reason: "too many frames waiting")
            }
        case .refused(let error):
            // Frames sent right behind the 101 can be lost by clients still completing their upgrade,
            // so the refusal answers the client's first frame.
            refuse(error, context: context)
        case .closing, .closed:
            break
        }
    }

    /// Answers with the refusal as an `error` frame, then closes with 4000 + its status, as the
    /// contract's close codes are: 4401 for credentials, 4429 for a user past the connection limit.
    private func refuse(_ error: ServerError, context: ChannelHandlerContext) {
        let frame = RealtimeMessage.error(
            subscription: nil,
            error: APIErrorDetail(type: error.type, code: Int(error.status.code), message: error.message)
        )
        if let text = frame.webSocketText {
            for part in Self.textFrames(text, allocator: context.channel.allocator) {
                context.write(wrapOutboundOut(part), promise: nil)
            }
        }
        if error.status == .tooManyRequests {
            close(context: context, code: .unknown(4429), reason: "too many connections")
        } else {
            close(context: context, code: .unknown(4401), reason: "unauthorized")
        }
    }

    private func receivedClose(_ frame: WebSocketFrame, context: ChannelHandlerContext) {
        if case .closing = state {
            // The peer answered our close frame.
            context.close(promise: nil)
            return
        }
        state = .closing
        // Echo the peer's status code, then drop the connection once that is written.
        var data = frame.unmaskedData
        let code = data.readInteger(as: UInt16.self)
        var echo = context.channel.allocator.buffer(capacity: 2)
        if let code { echo.writeInteger(code) }
        let reply = WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
    }

    private func outboxEnded(_ ending: RealtimeEnding, context: ChannelHandlerContext) {
        switch ending {
        case .closed:
            // A write failed, or the session ended: the socket goes.
            if case .closing = state { return }
            state = .closed
            context.close(promise: nil)
        case .slowConsumer:
            close(context: context, code: .policyViolation, reason: "slow consumer")
        case .credentialExpired:
            // An expired token no longer vouches for the user: the client reconnects with a fresh one.
            let frame = RealtimeMessage.error(subscription: nil, error: RealtimeController.credentialExpiredError)
            if let text = frame.webSocketText {
                for part in Self.textFrames(text, allocator: context.channel.allocator) {
                    context.write(wrapOutboundOut(part), promise: nil)
                }
            }
            close(context: context, code: .unknown(4401), reason: "token expired")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdown {
            close(context: context, code: .normalClosure, reason: "server shutting down")
        } else if let event = event as? ChannelEvent, event == .inputClosed {
            // The server allows half-closure; a peer that stopped sending is gone for a WebSocket.
            state = .closed
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Sends a close frame; when the peer does not answer within the close timeout (a consumer that
    /// stopped reading), drops the socket.
    private func close(context: ChannelHandlerContext, code: WebSocketErrorCode, reason: String) {
        switch state {
        case .closing, .closed: return
        default: break
        }
        state = .closing
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.write(webSocketErrorCode: code)
        data.writeString(reason)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        let channel = context.channel
        closeTimer = context.eventLoop.scheduleTask(in: TimeAmount(controller.closeTimeout)) {
            channel.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        expiry?.cancel()
        closeTimer?.cancel()
        sockets.remove(context.channel)
        if let connection {
            let hub = controller.services.realtime
            Task { await hub.disconnect(connection.id) }
        }
        connection = nil
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A message over the size limit in fragments gets the same answer as one over it in a single
        // frame (which NIO's protocol error handler gives): close code 1009, then the socket closes.
        if let error = error as? NIOWebSocketFrameAggregator.Error, error == .accumulatedFrameSizeIsTooLarge {
            close(context: context, code: .messageTooLarge, reason: "message too big")
            return
        }
        context.close(promise: nil)
    }

    /// The largest frame sent: longer messages go as continuation frames, as clients (swift-websocket's
    /// included) refuse frames past 16 KiB by default.
    static let maximumOutboundFrameSize = 1 << 14

    /// `text` as one text frame, or fragments of at most ``maximumOutboundFrameSize`` bytes.
    static func textFrames(_ text: String, allocator: ByteBufferAllocator) -> [WebSocketFrame] {
        var buffer = allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        guard buffer.readableBytes > maximumOutboundFrameSize else {
            return [WebSocketFrame(fin: true, opcode: .text, data: buffer)]
        }
        var frames: [WebSocketFrame] = []
        while buffer.readableBytes > 0 {
            let slice = buffer.readSlice(length: min(maximumOutboundFrameSize, buffer.readableBytes))!
            frames.append(
                WebSocketFrame(
                    fin: buffer.readableBytes == 0,
                    opcode: frames.isEmpty ? .text : .continuation,
                    data: slice
                )
            )
        }
        return frames
    }
}
