import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Runs a Hummingbird router on a loopback ephemeral port while `body` runs, then shuts it down, on
/// every path: the receivers, origins and proxies tests stand up beside the server.
///
/// ```swift
/// let router = Router()
/// router.get("/file") { _, _ in "bytes" }
/// try await LoopbackServer.withRunning(router, label: "file-origin") { port in
///     // http://127.0.0.1:\(port)/file answers
/// }
/// ```
public enum LoopbackServer {
    /// - Parameters:
    ///   - router: What the server answers.
    ///   - label: Its logger's label (it logs only critical problems).
    ///   - body: Runs with the bound port.
    public static func withRunning<T: Sendable>(
        _ router: Router<BasicRequestContext>,
        label: String,
        _ body: @Sendable (Int) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger
        )
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer { continuation.finish() }
                try await group.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw TestServerError(message: "the \(label) server stopped before it listened")
            }
            // Shut down without waiting on requests still in flight (a test's deliberately slow
            // answer, say): the group is cancelled after it is asked to stop.
            do {
                let result = try await body(port)
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                try? await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}
