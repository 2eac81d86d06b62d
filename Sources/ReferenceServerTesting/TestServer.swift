import Foundation
import Hummingbird
import Logging
import ReferenceServer
import ServiceLifecycle

/// An in-process reference server on an ephemeral port with a throwaway SQLite directory, for the
/// tests of programs that use pyat.
///
/// ```swift
/// try await TestServer.withRunning { server in
///     let demo = try await server.seedDemo()
///     // point your client at server.url with demo.token
/// }
/// ```
public struct TestServer: Sendable {
    /// The base URL, such as `http://127.0.0.1:49152`.
    public let url: String
    /// The port the server listens on.
    public let port: Int
    /// The server's store, auth and configuration.
    public let services: ServerServices

    /// Seeds the demo user and data and returns a personal access token for them.
    public func seedDemo() async throws -> DemoCredentials {
        try await DemoData.seed(services: services)
    }

    /// Starts a server, runs `body`, then shuts the server down and deletes its data.
    /// - Parameters:
    ///   - configure: Adjusts the configuration (host, port and data directory are set for you).
    ///   - body: The test, given the running server.
    public static func withRunning<T: Sendable>(
        configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pyat-testserver-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = ServerConfiguration.testing(directory: directory, port: 0)
        configure(&configuration)
        configuration.dataDirectory = directory
        configuration.host = "127.0.0.1"
        configuration.port = 0
        var logger = Logger(label: "pyat.testserver")
        logger.logLevel = .error
        let services = try await ServerServices.open(configuration: configuration, logger: logger)
        let (application, ports, _) = applicationReportingPort(services: services)
        let serviceGroup = ServiceGroup(
            configuration: .init(services: [application], logger: logger)
        )
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serviceGroup.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                throw TestServerError(message: "the test server stopped before it listened")
            }
            do {
                let result = try await body(
                    TestServer(url: "http://127.0.0.1:\(port)", port: port, services: services)
                )
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}

/// The test server could not start.
public struct TestServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension ServerConfiguration {
    /// A throwaway test server's configuration: loopback, cheap password hashing, auth throttles
    /// that a test suite signing in from one address does not reach, no fsync.
    static func testing(directory: String, port: Int) -> ServerConfiguration {
        ServerConfiguration(
            host: "127.0.0.1",
            port: port,
            dataDirectory: directory,
            auth: .init(bcryptCost: 4, throttle: .forTests),
            durableCommits: false,
            // Receivers in tests listen on loopback; retries come quickly so tests stay short.
            webhooks: .init(
                allowPrivateTargets: true,
                initialBackoff: .milliseconds(20),
                maximumBackoff: .milliseconds(500)
            )
        )
    }
}

/// The application over `services`, and a stream that yields its port once it listens (then ends);
/// finish the continuation to stop waiting when the application fails before listening.
func applicationReportingPort(
    services: ServerServices
) -> (some ApplicationProtocol, AsyncStream<Int>, AsyncStream<Int>.Continuation) {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let application = buildApplication(services: services) { port in
        continuation.yield(port)
        continuation.finish()
    }
    return (application, ports, continuation)
}

extension AuthThrottleConfiguration {
    /// Allowances a test suite signing in and refreshing from one address does not reach, still
    /// counted (a test that wants to see 429 sets its own).
    public static var forTests: AuthThrottleConfiguration {
        let generous = Limit(attempts: 100_000, period: 60)
        return AuthThrottleConfiguration(
            signInPerAccount: generous,
            signInPerAddress: generous,
            refreshPerAccount: generous,
            refreshPerAddress: generous
        )
    }
}
