import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import PyAirtableModels
import ServiceLifecycle

/// Pings a WebSocket peer on an event-loop timer, and closes the connection when nothing (a pong
/// included) was read since the previous ping. A timer, unlike a task per connection, keeps no stack.
final class WebSocketPinger: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// An empty, unmasked ping frame (FIN, opcode 0x9), as a server sends it.
    private static let ping: [UInt8] = [0x89, 0x00]
    private let interval: TimeAmount
    private var readSincePing = true
    private var timer: RepeatedTask?

    init(interval: TimeAmount) {
        self.interval = interval
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (pinger, context) = loopBound.value
            pinger.tick(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readSincePing = true
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func tick(context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            timer?.cancel()
            return
        }
        guard readSincePing else {
            context.close(promise: nil)
            return
        }
        readSincePing = false
        let frame = context.channel.allocator.buffer(bytes: Self.ping)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}
