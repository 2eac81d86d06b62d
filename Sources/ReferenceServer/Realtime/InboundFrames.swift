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

/// A connection's client frames on their way to the hub: a task handles them in order while some
/// wait, and ends when none is left (an idle connection holds no task).
final class InboundFrames: Sendable {
    private struct State {
        var connection: Int?
        var waiting: [String] = []
        var running = false

        /// Claims the handling task when frames wait for a known connection and none runs.
        mutating func claim() -> Bool {
            guard connection != nil, !waiting.isEmpty, !running else { return false }
            running = true
            return true
        }
    }

    /// The most frames waiting; a client past it is cut off rather than buffered without bound.
    static let capacity = 1024
    private let controller: RealtimeController
    private let state = Mutex(State())

    init(controller: RealtimeController) {
        self.controller = controller
    }

    /// Handles the frames for hub connection `connection`: those waiting, then those to come.
    func start(connection: Int) {
        if state.withLock({ state in
            state.connection = connection
            return state.claim()
        }) {
            run()
        }
    }

    /// Whether frames wait for a connection.
    var hasWaiting: Bool { state.withLock { !$0.waiting.isEmpty } }

    /// Queues a frame; `false` when too many wait.
    func offer(_ text: String) -> Bool {
        let (accepted, start) = state.withLock { state -> (Bool, Bool) in
            guard state.waiting.count < Self.capacity else { return (false, false) }
            state.waiting.append(text)
            return (true, state.claim())
        }
        if start { run() }
        return accepted
    }

    private func run() {
        let controller = self.controller
        Task {
            while let (text, connection) = self.next() {
                await controller.handle(text: text, connection: connection)
            }
        }
    }

    private func next() -> (String, Int)? {
        state.withLock { state in
            guard let connection = state.connection, !state.waiting.isEmpty else {
                state.running = false
                return nil
            }
            return (state.waiting.removeFirst(), connection)
        }
    }
}
