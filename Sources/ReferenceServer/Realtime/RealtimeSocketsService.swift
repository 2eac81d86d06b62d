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

/// Closes the realtime WebSockets when the server shuts down.
struct RealtimeSocketsService: Service {
    let sockets: RealtimeSockets

    func run() async throws {
        // Returns at graceful shutdown; throws when cancelled: either way, the sockets go.
        try? await gracefulShutdown()
        sockets.closeAll()
    }
}
