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

/// Open realtime WebSockets, so a server shutting down can close them (no task waits on them).
final class RealtimeSockets: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// Sockets open now.
    var count: Int { channels.withLock { $0.count } }

    func add(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Sends every socket a close frame (1000); each drops its connection if the peer does not answer.
    func closeAll() {
        let open = channels.withLock { Array($0.values) }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(RealtimeWebSocketHandler.ServerShutdown())
        }
    }
}
