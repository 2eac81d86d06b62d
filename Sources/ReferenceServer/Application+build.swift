import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// Builds the router with every route of the contract and the middleware chain.
///
/// ```swift
/// let services = try await ServerServices.open(configuration: .init(), logger: logger)
/// let router = buildRouter(services: services)
/// ```
public func buildRouter(services: ServerServices) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: MetricsMiddleware(metrics: services.metrics))
    router.add(middleware: AuthenticationMiddleware(auth: services.auth))
    router.add(
        middleware: BodyMiddleware(
            maximumBodySize: services.configuration.maximumBodySize,
            maximumJSONDepth: services.configuration.limits.maximumJSONDepth,
            keys: services.keys
        )
    )
    let api = router.group("api/v1")
    AuthController(services: services).addRoutes(to: api)
    WorkspacesController(services: services).addRoutes(to: api)
    SchemaController(services: services).addRoutes(to: api)
    RecordsController(services: services).addRoutes(to: api)
    OperationsController(services: services).addRoutes(api: api, root: router)
    RealtimeController(services: services).addRoutes(to: api)
    WebhooksController(services: services).addRoutes(to: api)
    FilesController(services: services).addRoutes(to: api)
    // Last, so it wraps only the not-found responder: see MethodNotAllowedMiddleware.
    router.add(
        middleware: MethodNotAllowedMiddleware(routes: RouteMethods(routes: router.routes.map { ($0.path, $0.method) }))
    )
    return router
}

/// Builds the reference server application: routes, the WebSocket upgrade of `GET /api/v1/ws`,
/// maintenance, graceful shutdown on SIGTERM/SIGINT when run with `runService()`.
///
/// - Parameters:
///   - services: The opened store, auth and metrics.
///   - onServerRunning: Called with the bound port once the server listens (useful with port 0).
public func buildApplication(
    services: ServerServices,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let configuration = services.configuration
    let realtime = RealtimeController(services: services)
    var application = Application(
        router: buildRouter(services: services),
        // HTTP/1.1, and WebSockets served from the channel pipeline: see RealtimeServerChannel.
        server: HTTPServerBuilder { responder in
            RealtimeServerChannel(
                responder: responder,
                realtime: realtime,
                maximumRequestHeadSize: configuration.limits.maximumRequestHeadSize
            )
        },
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port),
            serverName: configuration.serverName
        ),
        onServerRunning: { channel in
            await onServerRunning(channel.localAddress?.port ?? configuration.port)
        },
        logger: services.logger
    )
    application.addServices(MaintenanceService(services: services))
    application.addServices(RealtimeSocketsService(sockets: services.realtime.sockets))
    application.addServices(WebhookDeliveryService(services: services))
    return application
}

/// Trims the event log past its retention, drops expired idempotency answers and the bytes of files
/// no longer referenced, hourly.
struct MaintenanceService: Service {
    let services: ServerServices

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await runOnce()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
        }
    }

    func runOnce() async {
        let now = services.configuration.now()
        do {
            let purged = try await services.store.purgeIdempotencyKeys(now: now)
            try await services.blobs.removeUnreferenced(store: services.store)
            let trimmed = try await services.store.trimEvents(
                olderThan: now.addingTimeInterval(-services.configuration.eventRetention)
            )
            if purged + trimmed > 0 {
                services.logger.info(
                    "maintenance",
                    metadata: ["idempotency_purged": "\(purged)", "events_trimmed": "\(trimmed)"]
                )
            }
        } catch {
            services.logger.warning("maintenance failed", metadata: ["error": "\(error)"])
        }
    }
}
