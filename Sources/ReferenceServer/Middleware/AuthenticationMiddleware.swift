import Hummingbird

/// Authenticates `Authorization: Bearer …` (access JWT or personal access token). A request with a
/// bad token is refused; a request without one goes on unauthenticated (public routes).
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let auth: Authenticator

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            return try await next(request, context)
        }
        guard header.utf8.count > 7,
            header.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 | 0x20 == $1 })
        else {
            throw ServerError.unauthorized("the Authorization header must be 'Bearer <token>'")
        }
        var rest = header.dropFirst(7)
        while let first = rest.first, first == " " || first == "\t" { rest = rest.dropFirst() }
        while let last = rest.last, last == " " || last == "\t" { rest = rest.dropLast() }
        let token = String(rest)
        guard let principal = try await auth.authenticate(bearer: token) else {
            throw ServerError.unauthorized("the access token is invalid or expired")
        }
        var context = context
        context.principal = principal
        return try await next(request, context)
    }
}
