import Foundation
import HTTPTypes
import Hummingbird
import PyAirtableModels

/// `GET /mirror` and `POST /mirror/refresh` (mirror mode). A caller sees the mirrored bases whose
/// workspace they belong to; the mirror's owner and the server's operators see every one, those not
/// served yet included. Refreshing takes the creator role in the base's workspace (or being the
/// owner or an operator).
struct MirrorController {
    let services: ServerServices

    func addRoutes(to group: RouterGroup<AppRequestContext>) {
        group.get("mirror", use: status)
        group.post("mirror/refresh", use: refresh)
    }

    private func mirror() throws -> MirrorService {
        guard let mirror = services.mirror else {
            throw ServerError(.notFound, .notFound, "this server mirrors no base (start it with pyat serve --mirror)")
        }
        return mirror
    }

    /// The caller's roles by workspace, and whether they see every mirrored base.
    private func access(_ user: UserID, mirror: MirrorService) async throws -> (roles: [WorkspaceID: Role], all: Bool) {
        let workspaces = try await services.store.workspaces(user: user)
        let all = mirror.isOwner(user) || services.configuration.operatorUserIDs.contains(user)
        return (Dictionary(workspaces.map { ($0.id, $0.role) }, uniquingKeysWith: { first, _ in first }), all)
    }

    @Sendable func status(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let mirror = try mirror()
        let (roles, all) = try await access(user, mirror: mirror)
        return try .json(mirror.status { workspace in all || roles[workspace] != nil })
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let mirror = try mirror()
        let buffer = try await request.body.collect(upTo: 64 << 10)
        let body =
            buffer.readableBytes == 0
            ? MirrorRefreshRequest()
            : try JSONCoding.decoder.decode(MirrorRefreshRequest.self, from: Data(buffer.readableBytesView))
        let (roles, all) = try await access(user, mirror: mirror)
        let current = mirror.status { workspace in all || roles[workspace] != nil }
        let allowed = current.bases.filter { base in
            all || base.workspaceID.flatMap { roles[$0] }.map { $0 >= .creator } ?? false
        }
        let bases: [BaseID]
        if let base = body.baseID {
            guard current.bases.contains(where: { $0.baseID == base }) else {
                throw ServerError.notFound("mirrored base")
            }
            guard allowed.contains(where: { $0.baseID == base }) else {
                throw ServerError.forbidden(
                    "refreshing a mirrored base needs the creator role or higher in its workspace"
                )
            }
            bases = [base]
        } else {
            guard !allowed.isEmpty else {
                throw ServerError.forbidden(
                    "refreshing a mirrored base needs the creator role or higher in its workspace"
                )
            }
            bases = allowed.map(\.baseID)
        }
        for base in bases { mirror.refresh(base: base) }
        let asked = Set(bases)
        let answer = mirror.status { workspace in all || roles[workspace] != nil }
        return try .json(
            MirrorStatus(upstream: answer.upstream, bases: answer.bases.filter { asked.contains($0.baseID) }),
            status: .accepted
        )
    }
}

/// Says which sync an answer about a mirrored base reflects: `Pyat-Mirror-Sync: <sync id>` on the
/// answers of `/v0/{base}/…`, `/v0/meta/bases/{base}/…` and `/api/v1/bases/{base}…` (the routes
/// whose path names the base). Left out when a new snapshot was switched in while the request ran.
struct MirrorSyncHeaderMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    static let header = HTTPField.Name("Pyat-Mirror-Sync")!
    let mirror: MirrorService

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let base = Self.base(in: request.uri.path), let before = mirror.servedSync(of: base) else {
            return try await next(request, context)
        }
        var response = try await next(request, context)
        if mirror.servedSync(of: base) == before { response.headers[Self.header] = before }
        return response
    }

    /// The base a path names, for the routes that name one.
    static func base(in path: String) -> BaseID? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        let candidate: Substring?
        if parts.first == "v0" {
            candidate =
                parts.count > 3 && parts[1] == "meta" && parts[2] == "bases" ? parts[3] : parts.dropFirst().first
        } else if parts.count > 3, parts[0] == "api", parts[1] == "v1", parts[2] == "bases" {
            candidate = parts[3]
        } else {
            candidate = nil
        }
        return candidate.flatMap { BaseID(String($0)) }
    }
}
