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
    if let mirror = services.mirror { router.add(middleware: MirrorSyncHeaderMiddleware(mirror: mirror)) }
    router.add(
        middleware: BodyMiddleware(
            maximumBodySize: services.configuration.maximumBodySize,
            maximumJSONDepth: services.configuration.limits.maximumJSONDepth
        )
    )
    router.add(
        middleware: IdempotencyMiddleware(
            keys: services.keys,
            maximumBodySize: services.configuration.maximumBodySize
        )
    )
    let api = router.group("api/v1")
    AuthController(services: services, store: services.store).addRoutes(to: api)
    WorkspacesController(services: services, store: services.store).addRoutes(to: api)
    SchemaController(services: services, store: services.store).addRoutes(to: api)
    RecordsController(services: services, store: services.store).addRoutes(to: api)
    OperationsController(services: services, store: services.store).addRoutes(api: api, root: router)
    RealtimeController(services: services, store: services.store).addRoutes(to: api)
    WebhooksController(services: services, store: services.store).addRoutes(to: api)
    FilesController(services: services, store: services.store).addRoutes(to: api)
    CommentsController(services: services).addRoutes(to: api)
    MirrorController(services: services).addRoutes(to: api)
    // Airtable's Web API v0, over the same storage and access rules (errors in Airtable's shape: see
    // AirtableErrors).
    let airtable = router.group("v0")
    if services.configuration.airtable.enforceRateLimit {
        airtable.add(
            middleware: AirtableRateLimitMiddleware(
                configuration: services.configuration.airtable,
                store: services.store,
                now: services.configuration.now
            )
        )
    }
    AirtableMetaController(store: services.store).addRoutes(to: airtable)
    let airtableRecords = AirtableRecordsController(services: services, store: services.store)
    airtableRecords.addRoutes(to: airtable)
    AirtableCommentsController(services: services, records: airtableRecords).addRoutes(to: airtable)
    AirtableAttachmentsController(services: services).addRoutes(to: airtable)
    AirtableWebhooksController(services: services).addRoutes(to: airtable)
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
    let realtime = RealtimeController(services: services, store: services.store)
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
    // First: shutdown runs in reverse order, so the store closes after everything that uses it.
    application.addServices(StorageShutdownService(services: services))
    application.addServices(MaintenanceService(services: services))
    application.addServices(RealtimeSocketsService(sockets: services.realtime.sockets))
    application.addServices(WebhookDeliveryService(services: services))
    application.addServices(AirtableWebhookPinger(services: services))
    if let mirror = services.mirror { application.addServices(MirrorSyncService(mirror: mirror)) }
    return application
}

/// Closes the store's connections once the application shuts down gracefully, after the HTTP server
/// and every other service stopped (services stop in the reverse of the order they were added).
struct StorageShutdownService: Service {
    let services: ServerServices

    func run() async throws {
        try? await gracefulShutdown()
        await services.close()
    }
}
