import HTTPTypes
import Hummingbird
import PyAirtableModels

/// Answers a request whose path the router knows, with a method it does not serve there, with 405
/// and `Allow` instead of the router's 404.
///
/// Added after every route, so Hummingbird applies it only to the not-found responder: routed
/// requests never pass through it. It still checks that the 404 is the router's own and that the
/// method is really missing, so placing it elsewhere would not change an answer.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let routes: RouteMethods

    func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = routes.methods(forPath: request.uri.path)
            guard !allowed.isEmpty, !allowed.contains(request.method) else { throw error }
            throw ServerError.methodNotAllowed(method: request.method, allowed: allowed)
        }
    }
}

extension ServerError {
    static func methodNotAllowed(method: HTTPRequest.Method, allowed: [HTTPRequest.Method]) -> ServerError {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return ServerError(
            .methodNotAllowed,
            .validation,
            "\(method.rawValue) is not allowed here; this path answers \(list)",
            headers: [.allow: list]
        )
    }
}
