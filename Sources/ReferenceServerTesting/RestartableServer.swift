import Foundation
import Hummingbird
import Logging
import ReferenceServer
import ServiceLifecycle
import Synchronization

/// A reference server that a test can stop and start again on the same port and data directory, as
/// a deployment restarts — for testing that your program rides through server restarts.
///
/// ```swift
/// let server = RestartableServer()
/// try await server.start()
/// // … point a client at server.url …
/// await server.stop()          // connections drop; the data stays
/// try await server.start()     // same port, same data
/// await server.remove()
/// ```
public final class RestartableServer: Sendable {
    /// The data directory, kept across restarts.
    public let directory: String
    private struct Running {
        var group: ServiceGroup
        var task: Task<Void, any Error>
    }

    private let running = Mutex<Running?>(nil)
    private let boundPort = Mutex<Int>(0)

    public init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pyat-restartable-\(UUID())").path
    }

    /// The port (0 before the first start).
    public var port: Int { boundPort.withLock { $0 } }
    /// The base URL, such as `http://127.0.0.1:49152`.
    public var url: String { "http://127.0.0.1:\(port)" }

    /// Starts the server (on the port it had before, if it ran before) and returns its services.
    @discardableResult
    public func start(
        configure: @Sendable (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> ServerServices {
        // A port just let go of can stay taken for a moment on a busy machine: a restart retries.
        var attempt = 0
        while true {
            do {
                return try await startOnce(configure: configure)
            } catch _ as RestartableServerError where port != 0 && attempt < 50 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    private func startOnce(
        configure: @Sendable (inout ServerConfiguration) -> Void
    ) async throws -> ServerServices {
        var configuration = ServerConfiguration.testing(directory: directory, port: port)
        configure(&configuration)
        var logger = Logger(label: "pyat.restartable")
        logger.logLevel = .critical
        let services = try await ServerServices.open(configuration: configuration, logger: logger)
        let (application, ports, portContinuation) = applicationReportingPort(services: services)
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        let task = Task {
            do {
                try await group.run()
                portContinuation.finish()
            } catch {
                // Failing before listening (the port is taken, say) must not leave start() waiting.
                portContinuation.finish()
                throw error
            }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            let failure = await task.result
            if case .failure(let error) = failure {
                throw RestartableServerError(message: "the server did not start: \(error)")
            }
            throw RestartableServerError(message: "the server stopped before it listened")
        }
        boundPort.withLock { $0 = port }
        running.withLock { $0 = Running(group: group, task: task) }
        return services
    }

    /// Stops the server gracefully; its data stays for the next start.
    public func stop() async {
        guard
            let current = running.withLock({ state -> Running? in
                defer { state = nil }
                return state
            })
        else { return }
        await current.group.triggerGracefulShutdown()
        _ = try? await current.task.value
    }

    /// Stops the server and deletes its data.
    public func remove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A ``RestartableServer`` could not start.
public struct RestartableServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
