import Crypto
import Foundation
import Hummingbird
import PyAirtableModels

/// `GET /events/log`, `GET /stats` and the operational routes at the root.
struct OperationsController {
    let services: ServerServices
    let store: any EventLogRepository & StorageStatistics

    func addRoutes(api: RouterGroup<AppRequestContext>, root: Router<AppRequestContext>) {
        api.get("events/log", use: eventLog)
        api.get("stats", use: stats)
        root.get("health", use: health)
        root.get("metrics", use: metrics)
        root.get("openapi.yaml", use: openAPI)
    }

    @Sendable func eventLog(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        let since: Int64
        if let raw = query.get("since") {
            guard let value = Int64(raw), value >= 0 else {
                throw ServerError.validation("since must be a non-negative sequence number", field: "since")
            }
            since = value
        } else {
            since = 0
        }
        var limit = 100
        if let raw = query.get("limit") {
            guard let value = Int(raw), (1...EventLogPage.maximumLimit).contains(value) else {
                throw ServerError.validation("limit must be from 1 to \(EventLogPage.maximumLimit)", field: "limit")
            }
            limit = value
        }
        func id<Kind>(_ name: String) throws -> Identifier<Kind>? {
            guard let raw = query.get(name) else { return nil }
            guard let id = Identifier<Kind>(raw) else {
                throw ServerError.validation("'\(raw)' is not a valid \(name)", field: name)
            }
            return id
        }
        let filter = EventFilter(
            workspaceID: try id("workspace_id"),
            baseID: try id("base_id"),
            tableID: try id("table_id"),
            recordID: try id("record_id")
        )
        return try .json(try await store.events(since: since, filter: filter, limit: limit, user: user))
    }

    /// `GET /stats`: counts over the caller's workspaces; `?scope=server` counts the whole server,
    /// for the users named in ``ServerConfiguration/operatorUserIDs`` only (403 for anyone else).
    @Sendable func stats(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        var scope = ServerStats.Scope.workspaces
        if let raw = request.uri.queryParameters.get("scope") {
            guard let value = ServerStats.Scope(rawValue: raw) else {
                throw ServerError.validation(
                    "scope must be \(ServerStats.Scope.allCases.map(\.rawValue).joined(separator: " or "))",
                    field: "scope"
                )
            }
            scope = value
        }
        if scope == .server, !services.configuration.operatorUserIDs.contains(user) {
            throw ServerError.forbidden(
                "server-wide stats are for this server's operators (pyat serve --operator USER_ID); "
                    + "without scope=server the counts cover your own workspaces"
            )
        }
        let counts = try await store.stats(visibleTo: scope == .server ? nil : user)
        return try .json(
            ServerStats(
                scope: scope,
                users: counts.users,
                workspaces: counts.workspaces,
                bases: counts.bases,
                tables: counts.tables,
                records: counts.records,
                events: counts.events,
                lastEventSeq: counts.lastSeq,
                requests: scope == .server ? services.metrics.requests : nil,
                uptimeSeconds: services.uptimeSeconds
            )
        )
    }

    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        let database: String
        do {
            _ = try await store.eventBounds()
            database = "ok"
        } catch {
            database = "unavailable"
        }
        let status = HealthStatus(
            status: database == "ok" ? "ok" : "degraded",
            version: ReferenceServerInfo.version,
            uptimeSeconds: services.uptimeSeconds,
            database: database,
            mirror: services.mirror?.health
        )
        return try .json(status, status: database == "ok" ? .ok : .serviceUnavailable)
    }

    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        if let figures = store.recordCacheStatistics {
            services.metrics.observe(recordCache: figures)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: .init(string: services.metrics.exposition()))
        )
    }

    /// `Resources/openapi.yaml`, byte for byte: SwiftPM compiles it into the binary (`.embedInCode`),
    /// and it is copied into a buffer once, which every answer shares.
    static let openAPIDocument = ByteBuffer(bytes: PackageResources.openapi_yaml)

    @Sendable func openAPI(_ request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: Self.openAPIDocument)
        )
    }
}
